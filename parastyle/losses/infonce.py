"""Symmetric InfoNCE with a learnable temperature over the global (all-rank) batch (CLAP objective).

Pieces:

* :func:`infonce_loss` — the loss as a pure function of two embedding matrices and a logit scale.
* :class:`LogitScale` — the learnable ``1 / tau`` (initialised at ``1 / 0.07``, capped at 100).
* :func:`gather_with_grad` — ``all_gather`` across DDP ranks that keeps the gradient of the local
  slice, so every rank computes the loss over the global batch (each rank's gradient then flows
  through its own embeddings only; summed over ranks it is the gradient of the global loss).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def infonce_loss(audio: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
                 positives: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Bidirectional InfoNCE over cosine similarities.

    ``audio (N, D)``, ``text (N, D)`` (row i of each is a pair), ``logit_scale`` scalar ``1/tau``::

        s_ij = logit_scale * cos(a_i, t_j)
        L_a2t = -1/N sum_i sum_j q_ij log( exp(s_ij) / sum_k exp(s_ik) )
        L_t2a = -1/N sum_j sum_i q_ji log( exp(s_ij) / sum_k exp(s_kj) )
        L = (L_a2t + L_t2a) / 2

    ``q_ij = P_ij / sum_k P_ik`` with ``positives P (N, N)`` bool (default the identity, i.e. the
    classic one-positive InfoNCE). Marking pairs that share one caption as positives keeps
    identical captions of two clips from acting as negatives of each other. The diagonal of
    ``positives`` must be True.
    """
    if audio.dim() != 2 or audio.shape != text.shape:
        raise ValueError(f"infonce_loss: expected two (N, D) tensors, got {tuple(audio.shape)} and {tuple(text.shape)}")
    n = audio.shape[0]
    if positives is None:
        positives = torch.eye(n, dtype=torch.bool, device=audio.device)
    if positives.shape != (n, n) or not bool(positives.diagonal().all()):
        raise ValueError(f"infonce_loss: positives must be (N, N) = ({n}, {n}) with a True diagonal")
    logits = logit_scale * (F.normalize(audio, dim=-1) @ F.normalize(text, dim=-1).t())   # (N, N)
    q = positives.to(logits.dtype)
    a2t = -(q / q.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    t2a = -(q / q.sum(0, keepdim=True) * F.log_softmax(logits, dim=0)).sum(0).mean()
    return 0.5 * (a2t + t2a)


class LogitScale(nn.Module):
    """Learnable inverse temperature ``exp(w)``, ``w`` initialised to ``log(1 / init_tau)``.

    ``forward() -> min(exp(w), max_scale)`` (scalar); the cap (100, as in CLIP) keeps the
    temperature from collapsing. Gradients stop at the cap.
    """

    def __init__(self, init_tau: float = 0.07, max_scale: float = 100.0, learnable: bool = True):
        super().__init__()
        if init_tau <= 0 or 1.0 / init_tau > max_scale:
            raise ValueError(f"LogitScale: need 0 < 1/init_tau <= max_scale, got init_tau={init_tau}, max_scale={max_scale}")
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_tau)), requires_grad=learnable)
        self.max_scale = max_scale

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=self.max_scale)


def _dist_world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x (B, ...)`` of every rank in rank order -> ``(W * B, ...)``.

    Slices of other ranks are constants; this rank's slice is ``x`` itself, so gradients flow to
    the local embeddings. Every rank must pass the same ``B``. Single process: returns ``x``.
    """
    world = _dist_world()
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts, dim=0)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor without gradient (e.g. caption ids) over ranks -> ``(W * B, ...)``."""
    world = _dist_world()
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def global_infonce_loss(audio: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
                        group_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`infonce_loss` over the batch gathered from all ranks.

    ``audio, text (B, D)`` local; ``group_ids (B,)`` long, optional: pairs whose ids are equal
    (e.g. a hash of the caption) are positives of each other. Every rank gets the same loss value.
    """
    a = gather_with_grad(audio)
    t = gather_with_grad(text)
    positives = None
    if group_ids is not None:
        g = gather_no_grad(group_ids.to(audio.device))
        positives = g[:, None] == g[None, :]
    return infonce_loss(a, t, logit_scale, positives)
