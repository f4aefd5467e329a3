"""The ParaMETA Transformer backbone (``transformer``): strided conv front, post-norm self-attention, sum pooling.

::

    x (B, T, 80) --Conv1d(80, 64, kernel 4, stride 4)--> (B, T/4, 64) + sinusoidal positions
      --12 x post-norm self-attention block (4 heads, FFN 4d, GELU)--> sum over valid frames
      --Linear(64, 768)--> META embedding (B, 768)

Padding: the front follows the mask rule of :mod:`parastyle.nn.encoders.blocks` (an output frame is
valid iff its 4-frame window is valid); padded frames are masked out of every attention's keys and
out of the sum, so they never change an embedding. Default sizes: 0.67M parameters.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from parastyle.nn.encoders import ENCODERS
from parastyle.nn.encoders.blocks import PostNormAttentionBlock, lengths_mask, mask_lengths, sinusoidal_positions, \
    strided_front
from parastyle.nn.pooling import masked_sum

__all__ = ["TransformerEncoder", "sinusoidal_positions"]


@ENCODERS.register("transformer")
class TransformerEncoder(nn.Module):
    """ParaMETA Transformer backbone.

    Args:
        input_dim: D of the ``(B, T, D)`` features (80 log-mel bins).
        d_model: attention width (64).
        nhead: attention heads (4).
        dim_feedforward: FFN width (None = 4 * d_model).
        num_layers: self-attention blocks (12).
        subsample: kernel = stride of the Conv1d front (4).
        output_dim: size of the output (768, the META embedding).
        dropout: dropout in the attention blocks.
        max_len: longest supported input in frames (a guard against absurd inputs).
    """

    def __init__(self, input_dim: int, d_model: int = 64, nhead: int = 4, dim_feedforward: int | None = None,
                 num_layers: int = 12, subsample: int = 4, output_dim: int = 768, dropout: float = 0.0,
                 max_len: int = 100000):
        super().__init__()
        self.front = nn.Conv1d(input_dim, d_model, subsample, stride=subsample)
        self.blocks = nn.ModuleList(PostNormAttentionBlock(d_model, nhead, dim_feedforward, dropout)
                                    for _ in range(num_layers))
        self.out = nn.Linear(d_model, output_dim)
        self.d_model, self.max_len, self.output_dim = d_model, max_len, output_dim

    def forward_frames(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(h (B, T', d_model), mask (B, T'))``, T' = T // subsample;
        padded rows of ``h`` are 0."""
        if x.shape[1] > self.max_len:
            raise ValueError(f"transformer encoder: input of {x.shape[1]} frames exceeds max_len={self.max_len}")
        lengths = mask_lengths(mask, "transformer encoder")
        h, out_len = strided_front(self.front, x, lengths, "transformer encoder")
        fmask = lengths_mask(out_len, h.shape[1])
        h = h + sinusoidal_positions(h.shape[1], self.d_model, h.device, h.dtype)
        for block in self.blocks:
            h = block(h, key_mask=fmask)
        return h * fmask.unsqueeze(-1).to(h.dtype), fmask

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(B, output_dim)``: Linear of the sum over valid frames."""
        h, fmask = self.forward_frames(x, mask)
        return self.out(masked_sum(h, fmask))
