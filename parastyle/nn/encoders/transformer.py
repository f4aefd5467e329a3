"""Transformer utterance encoder: self-attention over frames + sum pooling over valid frames."""
from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import nn

from parastyle.nn.encoders import ENCODERS
from parastyle.nn.pooling import masked_sum


def sinusoidal_positions(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(length, dim)`` sinusoidal position table, ``PE[t, 2k] = sin(t / 10000^(2k/dim))``, cos for odd columns."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return pe.to(dtype)


@ENCODERS.register("transformer")
class TransformerEncoder(nn.Module):
    """``Linear(D, d_model)`` + sinusoidal positions + pre-norm Transformer encoder layers with a key
    padding mask, final LayerNorm, then **sum** pooling over valid frames.

    Padded frames are excluded from attention keys and from the pooled sum, so they never change an
    embedding. Defaults (d_model 256, 4 heads, FFN 512, 2 layers) give a full ParaMETA-Transformer
    model of 1.86M parameters (paper: 1.86M).

    Args:
        input_dim: D of the ``(B, T, D)`` features.
        d_model, nhead, dim_feedforward, num_layers, dropout: Transformer sizes.
        max_len: longest supported input, in frames (positions are computed on the fly; this only
            guards against silently absurd inputs).
    """

    def __init__(self, input_dim: int, d_model: int = 256, nhead: int = 4, dim_feedforward: int = 512,
                 num_layers: int = 2, dropout: float = 0.1, max_len: int = 20000):
        super().__init__()
        self.input_proj = nn.Linear(input_dim, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(d_model)
        self.d_model = d_model
        self.max_len = max_len
        self.output_dim = d_model

    def forward_frames(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(h (B, T, d_model), mask (B, T))``; padded rows are 0."""
        B, T, _ = x.shape
        if T > self.max_len:
            raise ValueError(f"transformer encoder: input of {T} frames exceeds max_len={self.max_len}")
        if bool((mask.sum(1) == 0).any()):
            raise ValueError("transformer encoder: an utterance has no valid frame (mask row all False)")
        h = self.input_proj(x) + sinusoidal_positions(T, self.d_model, x.device, x.dtype)
        h = self.layers(h, src_key_padding_mask=~mask)
        h = self.final_norm(h) * mask.unsqueeze(-1).to(h.dtype)
        return h, mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(B, d_model)`` sum over valid frames."""
        h, mask = self.forward_frames(x, mask)
        return masked_sum(h, mask)
