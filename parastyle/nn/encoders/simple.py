"""A small padding-aware TDNN encoder: a stack of 1-D convolutions and masked statistics pooling.

Padded frames are zeroed before every convolution, and the convolutions pad their input with
zeros, so a padded utterance sees exactly what it would see alone: padding never changes the
output. Normalisation is per frame (LayerNorm), never across the batch.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from parastyle.nn.encoders import ENCODERS
from parastyle.nn.pooling import masked_mean_std


@ENCODERS.register("tdnn")
class TDNNEncoder(nn.Module):
    """Conv1d stack + masked mean/std pooling + linear projection.

    Args:
        input_dim: feature dimension D.
        hidden: channels of every convolution layer H.
        kernel_sizes, dilations: one entry per layer (odd kernel sizes keep the length).
        output_dim: size of the utterance embedding E.
        dropout: dropout after each layer (training only).

    Shapes: ``forward(x (B, T, D), mask (B, T)) -> (B, E)``;
    ``forward_frames(x, mask) -> ((B, T, H), (B, T))``.
    """

    def __init__(self, input_dim: int, hidden: int = 128, kernel_sizes: Sequence[int] = (5, 3, 3),
                 dilations: Sequence[int] = (1, 2, 3), output_dim: int = 128, dropout: float = 0.1):
        super().__init__()
        if len(kernel_sizes) != len(dilations):
            raise ValueError("kernel_sizes and dilations need one entry per layer")
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel sizes must be odd, got {list(kernel_sizes)}")
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        dim = input_dim
        for k, d in zip(kernel_sizes, dilations):
            self.convs.append(nn.Conv1d(dim, hidden, k, dilation=d, padding=d * (k - 1) // 2))
            self.norms.append(nn.LayerNorm(hidden))
            dim = hidden
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(2 * hidden, output_dim)
        self.output_dim = output_dim
        self.frame_dim = hidden

    def forward_frames(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Frame features ``(B, T, H)`` (zero on padded frames) and the unchanged mask ``(B, T)``."""
        m = mask.unsqueeze(-1).to(x.dtype)
        h = x * m
        for conv, norm in zip(self.convs, self.norms):
            h = conv(h.transpose(1, 2)).transpose(1, 2)
            h = self.dropout(torch.relu(norm(h))) * m
        return h, mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Utterance embeddings ``(B, E)``."""
        h, mask = self.forward_frames(x, mask)
        return self.proj(masked_mean_std(h, mask))
