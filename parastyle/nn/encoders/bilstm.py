"""Bidirectional LSTM utterance encoder (``bilstm``) at full frame rate: the final hidden states of both
directions over valid frames. Not the paper's backbone (that is ``lstm``)."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from parastyle.nn.encoders import ENCODERS


def reverse_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``x (B, T, H)`` within its first ``lengths[b]`` frames; padding stays in place.

    ``out[b, t] = x[b, lengths[b] - 1 - t]`` for ``t < lengths[b]``, else ``x[b, t]``. It is its own inverse.
    """
    T = x.shape[1]
    t = torch.arange(T, device=x.device).unsqueeze(0)                  # (1, T)
    L = lengths.to(x.device).unsqueeze(1)                              # (B, 1)
    idx = torch.where(t < L, L - 1 - t, t)                             # (B, T)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


@ENCODERS.register("bilstm")
class BiLSTMEncoder(nn.Module):
    """Multi-layer (bi)directional LSTM; the embedding is the final hidden state of the top layer:
    the forward direction's output at the last valid frame, concatenated (bidirectional) with the
    backward direction's output at the first frame.

    Padding: padded frames are zeroed; the forward direction reads valid frames before any padding,
    and the backward direction runs over each sequence reversed *within its valid length*
    (:func:`reverse_valid`), so it too reads all valid frames before any padding. Neither final state
    depends on padded frames. (Each direction is its own ``nn.LSTM`` over the padded batch: on CPU,
    backpropagation through packed sequences is more than ten times slower.) Masks must be
    left-aligned (valid frames first), as produced by the collate function.

    Defaults: one bidirectional layer of 512 units.

    Args:
        input_dim: D of the ``(B, T, D)`` features.
        hidden_size: LSTM units per direction.
        num_layers: stacked layers (each layer's input is the previous layer's per-frame output).
        bidirectional: run a backward LSTM as well.
        dropout: dropout on the per-frame outputs between layers (ignored for one layer).
    """

    def __init__(self, input_dim: int, hidden_size: int = 512, num_layers: int = 1,
                 bidirectional: bool = True, dropout: float = 0.1):
        super().__init__()
        self.num_directions = 2 if bidirectional else 1
        self.output_dim = hidden_size * self.num_directions
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList() if bidirectional else None
        for layer in range(num_layers):
            in_dim = input_dim if layer == 0 else self.output_dim
            self.forward_layers.append(nn.LSTM(in_dim, hidden_size, batch_first=True))
            if bidirectional:
                self.backward_layers.append(nn.LSTM(in_dim, hidden_size, batch_first=True))
        self.dropout = nn.Dropout(dropout if num_layers > 1 else 0.0)

    def _run(self, x: torch.Tensor, mask: torch.Tensor):
        """-> per-frame top-layer outputs ``(B, T, output_dim)`` (padding rows 0) and the lengths."""
        lengths = mask.sum(1)
        if bool((lengths == 0).any()):
            raise ValueError("bilstm encoder: an utterance has no valid frame (mask row all False)")
        m = mask.unsqueeze(-1).to(x.dtype)
        h = x * m
        for i, fwd in enumerate(self.forward_layers):
            if i > 0:
                h = self.dropout(h)
            out = fwd(h)[0]
            if self.backward_layers is not None:
                back = reverse_valid(self.backward_layers[i](reverse_valid(h, lengths))[0], lengths)
                out = torch.cat([out, back], dim=-1)
            h = out * m
        return h, lengths

    def forward_frames(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(h (B, T, output_dim), mask (B, T))`` (padding = 0)."""
        h, _ = self._run(x, mask)
        return h, mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(B, output_dim)`` final hidden state(s) of the top layer."""
        h, lengths = self._run(x, mask)
        H = self.output_dim // self.num_directions
        b = torch.arange(x.shape[0], device=x.device)
        last = h[b, lengths - 1, :H]                                  # forward: last valid frame
        if self.num_directions == 1:
            return last
        return torch.cat([last, h[:, 0, H:]], dim=-1)                 # backward: first frame
