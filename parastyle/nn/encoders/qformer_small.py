"""Small pre-norm Q-Former utterance encoder (``qformer_small``): latent queries with self- and
cross-attention to full-band spectrogram patches, mean of the final queries. Not the paper's backbone
(that is ``qformer``)."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from parastyle.nn.encoders import ENCODERS
from parastyle.nn.encoders.blocks import sinusoidal_positions


class PreNormQFormerBlock(nn.Module):
    """Pre-norm block on queries ``q (B, Q, d)``: self-attention among queries, cross-attention from
    queries to patches ``kv (B, N, d)`` (padded patches masked out), feed-forward."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.norm_self = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.norm_q = nn.LayerNorm(d_model)
        self.norm_kv = nn.LayerNorm(d_model)
        self.cross_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, dim_feedforward), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(dim_feedforward, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor) -> torch.Tensor:
        h = self.norm_self(q)
        q = q + self.dropout(self.self_attn(h, h, h, need_weights=False)[0])
        kvn = self.norm_kv(kv)
        q = q + self.dropout(self.cross_attn(self.norm_q(q), kvn, kvn, key_padding_mask=~kv_mask,
                                             need_weights=False)[0])
        return q + self.dropout(self.ff(self.norm_ff(q)))


@ENCODERS.register("qformer_small")
class SmallQFormerEncoder(nn.Module):
    """The spectrogram ``(B, T, D)`` is cut into non-overlapping patches of ``patch_frames`` frames x
    all D bins, each flattened and linearly embedded (+ sinusoidal patch positions). ``num_queries``
    learnable latent queries attend to each other and cross-attend to the patches through
    ``num_layers`` blocks; the embedding is the mean of the final queries.

    Padding: padded frames are zeroed before patching, and a patch is a valid key iff it holds at
    least one valid frame. A partly padded patch is then exactly the zero-filled last patch an
    unpadded utterance of the same length would get, so padding never changes an embedding.

    Args:
        input_dim: D of the features.
        patch_frames: frames per patch.
        num_queries: number of learnable latent queries.
        d_model, nhead, dim_feedforward, num_layers, dropout: block sizes.
    """

    def __init__(self, input_dim: int, patch_frames: int = 4, num_queries: int = 8, d_model: int = 256,
                 nhead: int = 4, dim_feedforward: int = 512, num_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.patch_frames = patch_frames
        self.d_model = d_model
        self.patch_embed = nn.Linear(input_dim * patch_frames, d_model)
        self.queries = nn.Parameter(torch.randn(num_queries, d_model) * 0.02)
        self.blocks = nn.ModuleList(PreNormQFormerBlock(d_model, nhead, dim_feedforward, dropout)
                                    for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.output_dim = d_model

    def patchify(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(patches (B, N, d_model), patch_mask (B, N))``, N = ceil(T / P)."""
        B, T, D = x.shape
        P = self.patch_frames
        if bool((mask.sum(1) == 0).any()):
            raise ValueError("qformer_small encoder: an utterance has no valid frame (mask row all False)")
        x = x * mask.unsqueeze(-1).to(x.dtype)
        pad = (-T) % P
        if pad:
            x = torch.nn.functional.pad(x, (0, 0, 0, pad))
            mask = torch.nn.functional.pad(mask, (0, pad), value=False)
        N = x.shape[1] // P
        patches = x.reshape(B, N, P * D)
        patch_mask = mask.reshape(B, N, P).any(-1)
        h = self.patch_embed(patches) + sinusoidal_positions(N, self.d_model, x.device, x.dtype)
        return h, patch_mask

    def forward_frames(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns the final queries ``(B, Q, d_model)`` and an all-True ``(B, Q)`` mask."""
        kv, kv_mask = self.patchify(x, mask)
        q = self.queries.unsqueeze(0).expand(x.shape[0], -1, -1)
        for block in self.blocks:
            q = block(q, kv, kv_mask)
        q = self.final_norm(q)
        return q, torch.ones(q.shape[:2], dtype=torch.bool, device=q.device)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(B, d_model)`` mean of the final queries."""
        q, _ = self.forward_frames(x, mask)
        return q.mean(1)
