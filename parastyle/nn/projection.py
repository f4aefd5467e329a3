"""Projection heads mapping an encoder's embedding into a shared embedding space.

ParaSpeechCLAP (arXiv 2603.28737) puts a head of two linear layers with a GELU and a LayerNorm
on top of each tower (speech and text) to reach the joint 768-d space. This module implements
that head as::

    h = Linear(in_dim, hidden_dim)(x)
    h = GELU(h)
    h = Dropout(p)(h)
    y = LayerNorm(out_dim)(Linear(hidden_dim, out_dim)(h))

``hidden_dim`` defaults to ``out_dim``. The output is not L2-normalised: losses and scorers
normalise where they need cosine similarities.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """Linear-GELU-(Dropout)-Linear-LayerNorm: ``(B, in_dim)`` -> ``(B, out_dim)``.

    Args:
        in_dim: input embedding size.
        out_dim: output embedding size (768 in ParaSpeechCLAP).
        hidden_dim: size after the first linear layer (default ``out_dim``).
        dropout: dropout probability after the GELU.
    """

    def __init__(self, in_dim: int, out_dim: int = 768, hidden_dim: Optional[int] = None, dropout: float = 0.0):
        super().__init__()
        hidden_dim = out_dim if hidden_dim is None else hidden_dim
        self.in_dim, self.out_dim = in_dim, out_dim
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_dim, out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"ProjectionHead expects (..., {self.in_dim}), got shape {tuple(x.shape)}")
        return self.norm(self.fc2(self.dropout(self.act(self.fc1(x)))))
