"""Class prototypes per factor, kept as EMA buffers, and the prototype alignment loss (ParaMETA)."""
from __future__ import annotations

from typing import Dict, Iterable, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def prototype_alignment_loss(emb: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor,
                             seen: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Prototype alignment loss (PAL)::

        L = 1/|V| sum_{i in V} ( 1 - cos(e_i, p_{y_i}) ),    V = {i : y_i known and class y_i seen}

    ``emb (B, D)``, ``labels (B,)``, ``prototypes (C, D)`` (treated as constants), ``seen (C,)`` bool.
    Returns 0 (connected to the graph) when ``V`` is empty.
    """
    known = labels != ignore_index
    valid = known.clone()
    valid[known] = seen[labels[known]]
    if not bool(valid.any()):
        return emb.sum() * 0.0
    e = emb[valid]
    e = e if e.dtype == torch.float64 else e.float()                        # fp32 even under AMP
    p = prototypes.detach()[labels[valid]].to(e.dtype)
    return (1.0 - F.cosine_similarity(e, p, dim=-1)).mean()


class PrototypeBank(nn.Module):
    """One prototype per class per factor, stored as buffers ``proto_<factor> (C, D)`` (unit norm) and
    ``seen_<factor> (C,)`` bool, so they are saved in the model's state_dict.

    Update with a batch (``update``), for each class c present with known labels::

        mu_c = normalize( mean_{i : y_i = c} normalize(e_i) )
        p_c <- mu_c                                         if c has never been seen
        p_c <- normalize( m * p_c + (1 - m) * mu_c )        otherwise      (m = momentum, 0.99)

    Under torch.distributed (initialised, world size > 1) the batch is the *global* batch: the
    per-class sums ``sum_{i : y_i = c} normalize(e_i)`` and counts are all-reduced over ranks
    before ``mu_c``, so every rank computes the same prototypes, equal to one process fed the
    concatenated batch (DDP's buffer broadcast from rank 0 then loses nothing). ``update`` is
    then a collective: every rank must call it, in the same order. Set ``sync_distributed =
    False`` to update from the local batch only.

    Args:
        factors: ``{factor: number of classes}``.
        dim: embedding size of each factor's subspace.
        momentum: EMA momentum ``m``.
    """

    def __init__(self, factors: Dict[str, int], dim: int, momentum: float = 0.99):
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"PrototypeBank: momentum must be in [0, 1), got {momentum}")
        self.factors = list(factors)
        self.dim = dim
        self.momentum = momentum
        self.sync_distributed = True
        for f, n in factors.items():
            self.register_buffer(f"proto_{f}", torch.zeros(n, dim))
            self.register_buffer(f"seen_{f}", torch.zeros(n, dtype=torch.bool))

    def prototypes(self, factor: str) -> torch.Tensor:
        """``(C, D)`` prototypes of ``factor`` (rows of unseen classes are 0)."""
        return getattr(self, f"proto_{factor}")

    def seen(self, factor: str) -> torch.Tensor:
        """``(C,)`` bool: class has been updated at least once."""
        return getattr(self, f"seen_{factor}")

    @torch.no_grad()
    def update(self, factor: str, emb: torch.Tensor, labels: torch.Tensor,
               ignore_index: int = IGNORE_INDEX) -> None:
        """EMA update from ``emb (B, D)`` and ``labels (B,)`` (unknown labels skipped); global
        batch under torch.distributed (see the class docstring)."""
        proto, seen = self.prototypes(factor), self.seen(factor)
        sums, counts = self._class_sums(factor, emb, labels, ignore_index)    # (C, D), (C,)
        present = counts > 0
        if not bool(present.any()):
            return
        mu = F.normalize(sums[present], dim=-1)
        old = proto[present].float()
        was_seen = seen[present].unsqueeze(1)
        new = torch.where(was_seen, F.normalize(self.momentum * old + (1 - self.momentum) * mu, dim=-1), mu)
        proto[present] = new.to(proto.dtype)
        seen[present] = True

    def _class_sums(self, factor: str, emb: torch.Tensor, labels: torch.Tensor,
                    ignore_index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-class ``sum normalize(e_i)`` ``(C, D)`` float32 and counts ``(C,)`` long over known
        labels, all-reduced over ranks when distributed. Out-of-range labels raise on every rank."""
        if emb.dim() != 2 or emb.shape[1] != self.dim or labels.shape != emb.shape[:1]:
            raise ValueError(f"PrototypeBank.update: expected emb (B, {self.dim}) and labels (B,), got "
                             f"{tuple(emb.shape)} and {tuple(labels.shape)}")
        n_cls = self.prototypes(factor).shape[0]
        known = labels != ignore_index
        y = labels[known]
        bad = (y < 0) | (y >= n_cls)
        y = y[~bad]
        e = F.normalize(emb.detach()[known][~bad].float(), dim=-1)
        # one (C + 1, D + 1) buffer: [sums | counts] per class, last row = number of bad labels
        buf = torch.zeros(n_cls + 1, self.dim + 1, device=emb.device)
        buf[:n_cls, :self.dim].index_add_(0, y, e)
        buf[:n_cls, self.dim] = torch.bincount(y, minlength=n_cls).float()
        buf[n_cls, 0] = float(bad.sum())
        if self.sync_distributed and _world() > 1:
            dist.all_reduce(buf)
        if float(buf[n_cls, 0]) > 0:
            raise ValueError(f"PrototypeBank.update: label out of range [0, {n_cls}) for factor {factor!r}")
        return buf[:n_cls, :self.dim], buf[:n_cls, self.dim].round().long()

    def alignment_loss(self, factor: str, emb: torch.Tensor, labels: torch.Tensor,
                       ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
        """``prototype_alignment_loss`` of ``emb (B, D)`` against this factor's prototypes."""
        return prototype_alignment_loss(emb, labels, self.prototypes(factor), self.seen(factor), ignore_index)

    def nearest(self, factor: str, emb: torch.Tensor) -> torch.Tensor:
        """``emb (B, D)`` -> ``(B,)`` index of the most cosine-similar seen prototype.

        Raises if no class of ``factor`` has a prototype yet."""
        return self.similarities(factor, emb).argmax(-1)

    def similarities(self, factor: str, emb: torch.Tensor) -> torch.Tensor:
        """``emb (B, D)`` -> ``(B, C)`` cosine similarity to each prototype; unseen classes get -inf."""
        seen = self.seen(factor)
        if not bool(seen.any()):
            raise RuntimeError(f"PrototypeBank: no prototype of factor {factor!r} has been learned yet")
        sim = F.normalize(emb.float(), dim=-1) @ F.normalize(self.prototypes(factor).float(), dim=-1).t()
        return sim.masked_fill(~seen.unsqueeze(0), float("-inf"))


__all__: Iterable[str] = ["PrototypeBank", "prototype_alignment_loss"]
