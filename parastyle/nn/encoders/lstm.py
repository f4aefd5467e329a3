"""LSTM utterance encoder: the final hidden state of a (bi)directional LSTM over valid frames."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from parastyle.nn.encoders import ENCODERS


def _lengths(mask: torch.Tensor) -> torch.Tensor:
    lengths = mask.sum(1)
    if bool((lengths == 0).any()):
        raise ValueError("lstm encoder: an utterance has no valid frame (mask row all False)")
    return lengths


@ENCODERS.register("lstm")
class LSTMEncoder(nn.Module):
    """``Linear`` input projection (optional) + multi-layer LSTM; the embedding is the final hidden
    state of the top layer (forward and backward directions concatenated when bidirectional).

    Sequences are packed by their mask lengths, so padded frames are never read. Masks must be
    left-aligned (valid frames first), as produced by the collate function.

    Defaults (one bidirectional layer of 512 units) give a full ParaMETA-LSTM model of 3.81M
    parameters (paper: 3.77M).

    Args:
        input_dim: D of the ``(B, T, D)`` features.
        hidden_size: LSTM units per direction.
        num_layers: stacked LSTM layers.
        bidirectional: run a backward LSTM as well.
        dropout: dropout between LSTM layers (ignored for one layer).
    """

    def __init__(self, input_dim: int, hidden_size: int = 512, num_layers: int = 1,
                 bidirectional: bool = True, dropout: float = 0.1):
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.num_directions = 2 if bidirectional else 1
        self.output_dim = hidden_size * self.num_directions

    def _run(self, x: torch.Tensor, mask: torch.Tensor):
        lengths = _lengths(mask)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h_n, _) = self.lstm(packed)
        return out, h_n, lengths

    def forward_frames(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(h (B, T, output_dim), mask (B, T))`` (padding = 0)."""
        out, _, _ = self._run(x, mask)
        h, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return h, mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(B, output_dim)`` final hidden state(s) of the top layer."""
        _, h_n, _ = self._run(x, mask)
        # h_n: (num_layers * num_directions, B, H); the last num_directions rows are the top layer.
        top = h_n[-self.num_directions:]                   # (dirs, B, H)
        return top.transpose(0, 1).reshape(x.shape[0], self.output_dim)
