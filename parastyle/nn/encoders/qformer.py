"""The ParaMETA Q-Former backbone (``qformer``): latent queries cross-attending to spectrogram patches.

::

    x (B, T, 80) -> (B, 1, 80, T) --Conv2d(1, 64, 4x4, stride 4x4)--> 20 x T/4 patches of 64-d
      + sinusoidal positions of the time-patch index (shared by the 20 patches of one time step)
    12 learnable latent queries (64-d) --12 x post-norm cross-attention block
      (queries = latents, keys/values = all valid patches; 4 heads, FFN 4d)--> (B, 12, 64)
      --flatten--> (B, 768) --Linear(768, 768)--> META embedding (B, 768)

Padding: a time patch is valid iff its 4-frame window is valid (the mask rule of
:mod:`parastyle.nn.encoders.blocks`); patches of invalid time steps are masked out of every
cross-attention's keys, so padding never changes an embedding. Default sizes: 1.19M parameters.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from parastyle.nn.encoders import ENCODERS
from parastyle.nn.encoders.blocks import (PostNormAttentionBlock, check_min_frames, conv_out_lengths, lengths_mask,
                                          mask_lengths, sinusoidal_positions)


@ENCODERS.register("qformer")
class QFormerEncoder(nn.Module):
    """ParaMETA Q-Former backbone.

    Args:
        input_dim: mel bins D (80; must be a multiple of ``patch``).
        d_model: patch / query width (64).
        patch: square patch size = stride of the Conv2d (4).
        num_queries: learnable latent queries (12; 12 x 64 = 768).
        nhead, dim_feedforward (None = 4 d), num_layers (12), dropout: cross-attention blocks.
        output_dim: size of the output (768, the META embedding).
    """

    def __init__(self, input_dim: int, d_model: int = 64, patch: int = 4, num_queries: int = 12, nhead: int = 4,
                 dim_feedforward: int | None = None, num_layers: int = 12, output_dim: int = 768,
                 dropout: float = 0.0):
        super().__init__()
        if input_dim % patch:
            raise ValueError(f"qformer encoder: input_dim {input_dim} is not a multiple of the patch size {patch}")
        self.patch, self.d_model = patch, d_model
        self.front = nn.Conv2d(1, d_model, patch, stride=patch)
        self.queries = nn.Parameter(torch.randn(num_queries, d_model) * 0.02)
        self.blocks = nn.ModuleList(PostNormAttentionBlock(d_model, nhead, dim_feedforward, dropout, cross=True)
                                    for _ in range(num_layers))
        self.out = nn.Linear(num_queries * d_model, output_dim)
        self.output_dim = output_dim

    def patchify(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(patches (B, F' * T', d), patch_mask (B, F' * T'))``,
        F' = D / patch, T' = T // patch; patches ordered frequency-major."""
        lengths = mask_lengths(mask, "qformer encoder")
        out_len = conv_out_lengths(lengths, self.patch, self.patch)
        check_min_frames(lengths, out_len, "qformer encoder", self.patch)
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        h = self.front(x.transpose(1, 2).unsqueeze(1))                       # (B, d, F', T')
        B, d, Fp, Tp = h.shape
        h = h + sinusoidal_positions(Tp, d, h.device, h.dtype).t()[None, :, None, :]
        tmask = lengths_mask(out_len, Tp)                                     # (B, T')
        patches = h.permute(0, 2, 3, 1).reshape(B, Fp * Tp, d)
        return patches, tmask.unsqueeze(1).expand(B, Fp, Tp).reshape(B, Fp * Tp)

    def forward_frames(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Final queries ``(B, num_queries, d_model)`` and an all-True ``(B, num_queries)`` mask."""
        kv, kv_mask = self.patchify(x, mask)
        q = self.queries.unsqueeze(0).expand(x.shape[0], -1, -1)
        for block in self.blocks:
            q = block(q, kv, kv_mask)
        return q, torch.ones(q.shape[:2], dtype=torch.bool, device=q.device)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(B, output_dim)``: Linear of the flattened final queries."""
        q, _ = self.forward_frames(x, mask)
        return self.out(q.flatten(1))
