"""Wide pre-norm Transformer utterance encoder (``transformer_wide``): a linear front at full frame rate,
self-attention over frames, sum pooling over valid frames. Not the paper's backbone (that is ``transformer``)."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from parastyle.nn.encoders import ENCODERS
from parastyle.nn.encoders.blocks import sinusoidal_positions
from parastyle.nn.pooling import masked_sum


@ENCODERS.register("transformer_wide")
class WideTransformerEncoder(nn.Module):
    """``Linear(D, d_model)`` + sinusoidal positions + pre-norm Transformer encoder layers with a key
    padding mask, final LayerNorm, then **sum** pooling over valid frames.

    Padded frames are excluded from attention keys and from the pooled sum, so they never change an
    embedding. Defaults: d_model 256, 4 heads, FFN 512, 2 layers.

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
            raise ValueError(f"transformer_wide encoder: input of {T} frames exceeds max_len={self.max_len}")
        if bool((mask.sum(1) == 0).any()):
            raise ValueError("transformer_wide encoder: an utterance has no valid frame (mask row all False)")
        h = self.input_proj(x) + sinusoidal_positions(T, self.d_model, x.device, x.dtype)
        h = self.layers(h, src_key_padding_mask=~mask)
        h = self.final_norm(h) * mask.unsqueeze(-1).to(h.dtype)
        return h, mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(B, d_model)`` sum over valid frames."""
        h, mask = self.forward_frames(x, mask)
        return masked_sum(h, mask)
