"""Softmax-normalised weighting of the hidden layers of a (frozen) speech encoder."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn


class LayerWeighting(nn.Module):
    """Weighted average of L layer outputs, weights = softmax of learnable logits (initialised equal).

    ``h = sum_l softmax(w)_l * x_l``; with ``fixed_layer`` set (0-based index into the layers) the
    module returns that layer unchanged and has no parameters.

    ``forward(layers)``: a list of L tensors ``(B, T, D)`` or one tensor ``(L, B, T, D)`` -> ``(B, T, D)``.
    """

    def __init__(self, num_layers: int, fixed_layer: Optional[int] = None):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if fixed_layer is not None and not -num_layers <= fixed_layer < num_layers:
            raise ValueError(f"fixed_layer {fixed_layer} out of range for {num_layers} layers")
        self.num_layers = num_layers
        self.fixed_layer = None if fixed_layer is None else fixed_layer % num_layers
        if self.fixed_layer is None:
            self.logits = nn.Parameter(torch.zeros(num_layers))
        else:
            self.register_parameter("logits", None)

    def weights(self) -> torch.Tensor:
        """``(L,)`` the normalised layer weights (one-hot for a fixed layer)."""
        if self.fixed_layer is not None:
            w = torch.zeros(self.num_layers)
            w[self.fixed_layer] = 1.0
            return w
        return torch.softmax(self.logits, dim=0)

    def forward(self, layers: Union[Sequence[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if len(layers) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} layers, got {len(layers)}")
        if self.fixed_layer is not None:
            return layers[self.fixed_layer]
        stacked = layers if torch.is_tensor(layers) else torch.stack(list(layers), dim=0)   # (L, B, T, D)
        w = torch.softmax(self.logits, dim=0).to(stacked.dtype)
        return torch.einsum("l,lbtd->btd", w, stacked)
