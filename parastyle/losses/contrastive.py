"""Contrastive losses on embeddings: supervised contrastive (SupCon), ParaMETA's META regularisation
and symmetric InfoNCE (CLAP objective).

All functions are pure functions of tensors. Unknown labels are ``ignore_index`` (-100).
An empty loss (no valid anchor) is an exact 0 that stays connected to the graph, never NaN.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def _zero(x: torch.Tensor) -> torch.Tensor:
    """A 0 that keeps ``x`` in the autograd graph (so ``backward`` works on an empty loss)."""
    return x.sum().float() * 0.0


def _log_softmax_without_self(emb: torch.Tensor, tau: float) -> torch.Tensor:
    """``emb (N, D)`` -> ``(N, N)`` ``log p_ij = s_ij - log sum_{k != i} exp(s_ik)``,
    ``s_ij = cos(e_i, e_j) / tau``; the diagonal is set to 0 (it is never used)."""
    z = F.normalize(emb if emb.dtype == torch.float64 else emb.float(), dim=-1)   # fp32 even under AMP
    sim = z @ z.t() / tau
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    sim = sim.masked_fill(eye, float("-inf"))
    logp = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    return logp.masked_fill(eye, 0.0)


def weighted_contrastive_loss(emb: torch.Tensor, weights: torch.Tensor, tau: float) -> torch.Tensor:
    """Contrastive loss with soft targets over the other samples of the batch.

    ``emb (N, D)``, ``weights (N, N)`` non-negative (the diagonal is ignored)::

        p_ij = exp(s_ij) / sum_{k != i} exp(s_ik),    s_ij = cos(e_i, e_j) / tau
        L = 1/|A| sum_{i in A} - sum_{j != i} (w_ij / sum_{k != i} w_ik) log p_ij

    where ``A`` are the anchors with ``sum_{k != i} w_ik > 0``. Returns 0 if ``A`` is empty.
    """
    n = emb.shape[0]
    if n < 2:
        return _zero(emb)
    eye = torch.eye(n, dtype=torch.bool, device=emb.device)
    logp = _log_softmax_without_self(emb, tau)
    w = weights.to(logp.dtype).masked_fill(eye, 0.0)
    row = w.sum(1)
    anchors = row > 0
    if not bool(anchors.any()):
        return _zero(emb)
    per_anchor = -(w[anchors] * logp[anchors]).sum(1) / row[anchors]
    return per_anchor.mean()


def supcon_loss(emb: torch.Tensor, labels: torch.Tensor, tau: float = 0.1,
                ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al., 2020, "L_out").

    ``emb (B, D)``, ``labels (B,)`` long. Samples whose label is ``ignore_index`` are removed
    entirely (neither anchors nor candidates). Over the remaining set ``I``::

        L = 1/|A| sum_{i in A} -1/|P(i)| sum_{p in P(i)} log( exp(s_ip) / sum_{k in I, k != i} exp(s_ik) )

    with ``s = cos / tau``, ``P(i) = {p != i : y_p = y_i}`` and ``A = {i : P(i) non-empty}``.
    Returns 0 when no sample has a positive (batch of 1, all labels unknown, all classes singletons).
    """
    if emb.dim() != 2 or labels.shape != emb.shape[:1]:
        raise ValueError(f"supcon_loss: expected emb (B, D) and labels (B,), got {tuple(emb.shape)} "
                         f"and {tuple(labels.shape)}")
    known = labels != ignore_index
    e, y = emb[known], labels[known]
    pos = (y.unsqueeze(0) == y.unsqueeze(1))
    return weighted_contrastive_loss(e, pos, tau) if e.shape[0] > 0 else _zero(emb)


def meta_pair_weights(labels: Dict[str, torch.Tensor], ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Pair weights of the META regularisation: the fraction of factors on which two samples share a label.

    ``labels``: ``{factor: (B,) long}`` over ``F`` factors. ::

        w_ij = 1/F sum_f [y_i^f = y_j^f  and  y_i^f, y_j^f both known]

    An unknown label never counts as shared, and the denominator stays ``F``: a pair whose labels are
    unknown on some factor gets no credit for that factor (no evidence of a shared style is not
    treated as a shared style). Returns ``(B, B)``; the diagonal is 0 (self excluded).
    """
    if not labels:
        raise ValueError("meta_pair_weights: no factors given")
    ys = list(labels.values())
    B = ys[0].shape[0]
    w = torch.zeros(B, B, device=ys[0].device)
    for y in ys:
        known = y != ignore_index
        w += ((y.unsqueeze(0) == y.unsqueeze(1)) & known.unsqueeze(0) & known.unsqueeze(1)).float()
    w /= len(ys)
    w.fill_diagonal_(0.0)
    return w


def meta_regularization_loss(meta: torch.Tensor, labels: Dict[str, torch.Tensor], tau: float = 0.1,
                             ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """META regularisation over META embeddings ``meta (B, D)``::

        w_ij = 1/F sum_f [y_i^f = y_j^f, both known]                       (meta_pair_weights)
        L = 1/|A| sum_{i in A} - sum_{j != i} (w_ij / sum_{k != i} w_ik) log softmax_{k != i}(cos(m_i, m_k) / tau)_j

    with ``A`` the anchors sharing at least one known label with another sample. Pairs sharing more
    factors are pulled closer, so the META space orders utterances by overall style similarity.
    """
    return weighted_contrastive_loss(meta, meta_pair_weights(labels, ignore_index), tau)


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, tau: float,
                       positives: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Symmetric InfoNCE between paired embeddings ``a (B, D)`` and ``b (B, D)`` (e.g. speech and caption)::

        s_ij = cos(a_i, b_j) / tau
        L_a2b = 1/B sum_i -1/|P(i)| sum_{j in P(i)} log( exp(s_ij) / sum_k exp(s_ik) )
        L_b2a = same on s^T;   L = (L_a2b + L_b2a) / 2

    ``positives (B, B)`` bool marks which pairs count as matches (default: the diagonal). Passing
    "same caption text" avoids treating identical captions of two utterances as negatives. The
    diagonal must be positive.
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"symmetric_info_nce: expected two (B, D) tensors, got {tuple(a.shape)}, {tuple(b.shape)}")
    B = a.shape[0]
    eye = torch.eye(B, dtype=torch.bool, device=a.device)
    pos = eye if positives is None else positives.to(torch.bool)
    if not bool(pos.diagonal().all()):
        raise ValueError("symmetric_info_nce: every pair (i, i) must be a positive")
    if a.dtype != torch.float64:
        a, b = a.float(), b.float()                                            # fp32 even under AMP
    s = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).t() / tau
    posf = pos.to(s.dtype)

    def one_side(logits, p):
        logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        return (-(p * logp).sum(1) / p.sum(1)).mean()

    return 0.5 * (one_side(s, posf) + one_side(s.t(), posf.t()))
