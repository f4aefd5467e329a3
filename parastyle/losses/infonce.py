"""Symmetric InfoNCE with a learnable temperature over the global (all-rank) batch (CLAP objective).

Pieces:

* :func:`infonce_loss` — the loss as a pure function of two embedding matrices and a logit scale.
* :class:`LogitScale` — the learnable ``1 / tau`` (initialised at ``1 / 0.07``, capped at 100).
* :func:`gather_with_grad` / :func:`gather_no_grad` — ``all_gather`` across DDP ranks of tensors
  whose first dimension may differ between ranks (``batch[r::W]`` sharding of a global batch that
  is not a multiple of ``W``): the per-rank sizes are gathered first, every rank pads to the
  largest size, and the padding is stripped after the gather. ``gather_with_grad`` keeps the
  gradient of the local slice (other ranks' slices are constants).
* :func:`global_infonce_loss` — the loss over the global batch, with the DDP gradient convention
  below.

DDP gradient convention. Every rank computes the *whole* global loss ``L`` (all ``N = sum_r B_r``
rows), so every rank reports the same loss value, equal to the single-process loss over the
global batch. The gradient reaching rank ``r``'s embeddings is exact, ``dL/de_r``, but only rank
``r`` sees it, whereas the logit-scale gradient ``dL/ds`` is computed in full on every rank. DDP
*averages* gradients over the ``W`` ranks, which would give ``(1/W) dL/dtheta`` for the encoders
and ``dL/ds`` for the scale. :func:`global_infonce_loss` therefore multiplies the gradient flowing
back into the local embeddings by ``W`` (identity forward), so that after DDP averaging::

    (1/W) sum_r W * dL/de_r * de_r/dtheta = dL/dtheta,        (1/W) sum_r dL/ds = dL/ds

i.e. the averaged gradients equal those of one process on the global batch.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

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


def gather_sizes(n: int, device: torch.device) -> List[int]:
    """Local batch size ``n`` of every rank, in rank order (``[n]`` without torch.distributed)."""
    world = _dist_world()
    if world == 1:
        return [int(n)]
    mine = torch.tensor([int(n)], dtype=torch.long, device=device)
    parts = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(parts, mine)
    return [int(p.item()) for p in parts]


def _gather_padded(x: torch.Tensor, sizes: Sequence[int]) -> List[torch.Tensor]:
    """``x (B_r, ...)`` of every rank -> list of ``(B_q, ...)`` tensors (no gradient), rank order.

    Each rank pads its rows to ``max_q B_q`` (``all_gather`` needs equal shapes), the padding is
    stripped afterwards."""
    if len(sizes) != _dist_world() or x.shape[0] != sizes[dist.get_rank()]:
        raise ValueError(f"gather: local size {x.shape[0]} does not match the gathered sizes {list(sizes)}")
    m = max(sizes)
    x = x.detach().contiguous()
    if x.shape[0] < m:
        x = torch.cat([x, x.new_zeros((m - x.shape[0],) + tuple(x.shape[1:]))], dim=0)
    parts = [torch.empty_like(x) for _ in sizes]
    dist.all_gather(parts, x)
    return [p[:n] for p, n in zip(parts, sizes)]


def gather_with_grad(x: torch.Tensor, sizes: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Concatenate ``x (B_r, ...)`` of every rank in rank order -> ``(sum_r B_r, ...)``.

    ``B_r`` may differ between ranks; ``sizes`` (from :func:`gather_sizes`) saves one collective
    when known. Slices of other ranks are constants; this rank's slice is ``x`` itself, so
    gradients flow to the local embeddings (unscaled). Single process: returns ``x``.
    """
    if _dist_world() == 1:
        return x
    sizes = gather_sizes(x.shape[0], x.device) if sizes is None else sizes
    parts = _gather_padded(x, sizes)
    parts[dist.get_rank()] = x
    return torch.cat(parts, dim=0)


def gather_no_grad(x: torch.Tensor, sizes: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Concatenate a tensor without gradient (e.g. caption ids) ``(B_r, ...)`` over ranks ->
    ``(sum_r B_r, ...)``; ``B_r`` may differ between ranks."""
    if _dist_world() == 1:
        return x
    sizes = gather_sizes(x.shape[0], x.device) if sizes is None else sizes
    return torch.cat(_gather_padded(x, sizes), dim=0)


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``factor`` in backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.factor, None


def global_infonce_loss(audio: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
                        group_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`infonce_loss` over the batch gathered from all ranks.

    ``audio, text (B_r, D)`` local (``B_r`` may differ between ranks); ``group_ids (B_r,)`` long,
    optional: pairs whose ids are equal (e.g. a hash of the caption) are positives of each other,
    across ranks too. Every rank returns the same value, the loss ``L`` over the ``N = sum_r B_r``
    gathered pairs. With ``W > 1`` ranks the gradient into ``audio`` and ``text`` is multiplied by
    ``W`` so that DDP-averaged gradients equal the single-process gradients of ``L`` (see the
    module docstring); ``logit_scale`` gets ``dL/ds`` unscaled.
    """
    world = _dist_world()
    if world == 1:
        a, t, g = audio, text, group_ids
    else:
        if audio.shape != text.shape or (group_ids is not None and group_ids.shape[0] != audio.shape[0]):
            raise ValueError(f"global_infonce_loss: local shapes differ: audio {tuple(audio.shape)}, "
                             f"text {tuple(text.shape)}, group_ids "
                             f"{None if group_ids is None else tuple(group_ids.shape)}")
        sizes = gather_sizes(audio.shape[0], audio.device)
        a = gather_with_grad(_ScaleGrad.apply(audio, float(world)), sizes)
        t = gather_with_grad(_ScaleGrad.apply(text, float(world)), sizes)
        g = None if group_ids is None else gather_no_grad(group_ids.to(audio.device), sizes)
    positives = None
    if g is not None:
        g = g.to(audio.device)
        positives = g[:, None] == g[None, :]
    return infonce_loss(a, t, logit_scale, positives)
