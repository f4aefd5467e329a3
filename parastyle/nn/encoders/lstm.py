"""The ParaMETA LSTM backbone (``lstm``): strided conv front and one unidirectional LSTM; the final state.

::

    x (B, T, 80) --Conv1d(80, 64, kernel 4, stride 4)--> (B, T/4, 64)
      --LSTM(64, 768)--> hidden state at the last valid frame = META embedding (B, 768)

The LSTM runs fused (``nn.LSTM``) over the padded batch, without packing or per-step masking: it
is unidirectional, so its output at frame t depends on frames <= t only, and the hidden state at
each utterance's last valid frame (gathered from the per-frame outputs) is exactly the final
state of that utterance alone. Padding never changes an embedding. Default sizes: 2.58M parameters.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from parastyle.nn.encoders import ENCODERS
from parastyle.nn.encoders.blocks import lengths_mask, mask_lengths, strided_front


@ENCODERS.register("lstm")
class LSTMEncoder(nn.Module):
    """ParaMETA LSTM backbone.

    Args:
        input_dim: D of the features (80).
        front_dim: channels of the Conv1d front (64).
        hidden_size: LSTM units = output size (768, the META embedding).
        subsample: kernel = stride of the front (4).
        dropout: dropout on the front's output (training only; 0 = none, the authors' setting).
    """

    def __init__(self, input_dim: int, front_dim: int = 64, hidden_size: int = 768, subsample: int = 4,
                 dropout: float = 0.0):
        super().__init__()
        self.front = nn.Conv1d(input_dim, front_dim, subsample, stride=subsample)
        self.lstm = nn.LSTM(front_dim, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = hidden_size

    def _run(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        lengths = mask_lengths(mask, "lstm encoder")
        h, out_len = strided_front(self.front, x, lengths, "lstm encoder")
        return self.lstm(self.dropout(h))[0], out_len

    def forward_frames(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(h (B, T', hidden), mask (B, T'))``; padded rows are 0."""
        h, out_len = self._run(x, mask)
        fmask = lengths_mask(out_len, h.shape[1])
        return h * fmask.unsqueeze(-1).to(h.dtype), fmask

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(B, hidden)``: the hidden state at the last valid frame."""
        h, out_len = self._run(x, mask)
        return h[torch.arange(h.shape[0], device=h.device), out_len - 1]
