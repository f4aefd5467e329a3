"""Projection heads mapping an encoder's embedding into a shared embedding space.

ParaSpeechCLAP (arXiv 2603.28737) puts one head on top of each tower (speech and text) to reach
the joint 768-d space. The head is the one of the authors' code (the CLAP ``Projection``)::

    x1 = W1 x                                   (Linear(in_dim, out_dim), no bias)
    y  = LayerNorm(x1 + Dropout(W2 GELU(x1)))   (W2: Linear(out_dim, out_dim), no bias)

i.e. a residual two-layer MLP with a post-LayerNorm; dropout 0.5 in the paper's configs. The
output is not L2-normalised: losses and scorers normalise where they need cosine similarities.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """``LayerNorm(x1 + Dropout(W2 GELU(x1)))``, ``x1 = W1 x``: ``(..., in_dim)`` -> ``(..., out_dim)``.

    Args:
        in_dim: input embedding size.
        out_dim: output embedding size (768 in ParaSpeechCLAP).
        dropout: dropout probability on the residual branch ``W2 GELU(x1)`` (0.5 in the paper).
    """

    def __init__(self, in_dim: int, out_dim: int = 768, dropout: float = 0.5):
        super().__init__()
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"ProjectionHead: dropout must be in [0, 1), got {dropout}")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.fc1 = nn.Linear(in_dim, out_dim, bias=False)
        self.fc2 = nn.Linear(out_dim, out_dim, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"ProjectionHead expects (..., {self.in_dim}), got shape {tuple(x.shape)}")
        x1 = self.fc1(x)
        return self.norm(x1 + self.dropout(self.fc2(F.gelu(x1))))
