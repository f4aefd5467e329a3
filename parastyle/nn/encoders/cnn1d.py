"""1-D convolutional utterance encoder (``cnn1d``): convolutions over time + masked global mean pooling.
Not the paper's backbone (that is the 2-D ResNet ``cnn``)."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from parastyle.nn.encoders import ENCODERS
from parastyle.nn.pooling import masked_mean


class _ChannelNorm(nn.Module):
    """LayerNorm over channels of a ``(B, C, T)`` tensor, independently per frame (so padding never leaks in)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


@ENCODERS.register("cnn1d")
class CNN1dEncoder(nn.Module):
    """Stack of ``Conv1d -> LayerNorm(channels) -> ReLU`` blocks (stride 1, 'same' padding),
    then masked mean pooling over valid frames.

    Padded frames are zeroed before every convolution, so a valid frame sees exactly what it would
    see in an unpadded utterance (zero 'same' padding at the edges) and padding never changes the
    embedding. Per-frame LayerNorm (not BatchNorm) keeps utterances independent of their batch.

    Args:
        input_dim: D of the ``(B, T, D)`` features (80 log-mel bins).
        channels: output channels of each conv block.
        kernel_size: temporal kernel size (odd).
        dropout: dropout after each block.
    """

    def __init__(self, input_dim: int, channels: Sequence[int] = (128, 256, 256), kernel_size: int = 5,
                 dropout: float = 0.1):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"cnn1d encoder: kernel_size must be odd, got {kernel_size}")
        if not channels:
            raise ValueError("cnn1d encoder: channels must name at least one conv layer")
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        prev = input_dim
        for c in channels:
            self.convs.append(nn.Conv1d(prev, c, kernel_size, padding=kernel_size // 2))
            self.norms.append(_ChannelNorm(c))
            prev = c
        self.dropout = nn.Dropout(dropout)
        self.output_dim = prev

    def forward_frames(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(h (B, T, C), mask (B, T))``; padded rows of ``h`` are 0."""
        m = mask.unsqueeze(1).to(x.dtype)                  # (B, 1, T)
        h = x.transpose(1, 2)                              # (B, D, T)
        for conv, norm in zip(self.convs, self.norms):
            h = self.dropout(torch.relu(norm(conv(h * m))))
        h = h * m
        return h.transpose(1, 2), mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(B, output_dim)`` mean over valid frames."""
        h, mask = self.forward_frames(x, mask)
        return masked_mean(h, mask)
