"""Attention pooling with a learned query over the valid frames of a sequence."""
from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import nn


class AttentionPooling(nn.Module):
    """Pool ``(B, T, D)`` frames into ``(B, D)`` with weights from a learned query.

    score_t = q . x_t / sqrt(D);  a_t = softmax over valid frames of score_t (0 on padding);
    pooled = sum_t a_t x_t.

    ``forward(x (B, T, D), mask (B, T) bool, True = valid) -> (pooled (B, D), weights (B, T))``.
    A sequence with no valid frame is an error.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.query = nn.Parameter(torch.randn(dim) / math.sqrt(dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"expected (B, T, {self.dim}) frames, got {tuple(x.shape)}")
        if mask.shape != x.shape[:2]:
            raise ValueError(f"mask {tuple(mask.shape)} does not match frames {tuple(x.shape[:2])}")
        if not bool(mask.any(1).all()):
            bad = [i for i, ok in enumerate(mask.any(1).tolist()) if not ok]
            raise ValueError(f"attention pooling: sequences {bad} of the batch have no valid frame")
        scores = (x @ self.query.to(x.dtype)) / math.sqrt(self.dim)          # (B, T)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)                                # (B, T), 0 on padding
        pooled = torch.einsum("bt,btd->bd", weights, x.masked_fill(~mask.unsqueeze(-1), 0.0))
        return pooled, weights
