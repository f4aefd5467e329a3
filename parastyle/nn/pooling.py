"""Pooling over time with explicit padding masks.

Shapes: ``x`` is ``(B, T, D)``, ``mask`` is ``(B, T)`` bool, True on valid frames.
"""
from __future__ import annotations

import torch


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, T)`` bool mask, True on valid frames."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over valid frames: ``(B, T, D) -> (B, D)``."""
    return (x * mask.unsqueeze(-1).to(x.dtype)).sum(1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames: ``(B, T, D) -> (B, D)``; an all-padding row gives zeros."""
    n = mask.sum(1, keepdim=True).clamp(min=1).to(x.dtype)
    return masked_sum(x, mask) / n


def masked_mean_std(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Statistics pooling: concatenated mean and standard deviation, ``(B, T, D) -> (B, 2D)``."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean.unsqueeze(1)) ** 2, mask)
    return torch.cat([mean, (var + eps).sqrt()], dim=-1)
