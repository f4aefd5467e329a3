"""The ParaMETA CNN backbone (``cnn``): a 2-D ResNet over the (mel x time) plane, masked BatchNorm,
global average pooling over valid positions.

::

    x (B, T, 80) -> (B, 1, 80, T)
      stem    Conv2d(1, 32, 3x3) + BatchNorm + ReLU
      blocks  32 -> 64 (stride 2), 64 -> 64, 64 -> 128 (stride 2), 128 -> 128
              (two 3x3 convs with BatchNorm; 1x1 conv + BatchNorm shortcut when the shape changes)
      global average pooling over (mel, valid time) -> Linear(128, 768) = META embedding (B, 768)

Padding follows the mask rule of :mod:`parastyle.nn.encoders.blocks`: padded frames are zeroed
before every convolution, each convolution's valid length is PyTorch's output-length formula of
the utterance's valid length, BatchNorm statistics (training) are taken over valid frames only
(:class:`MaskedBatchNorm`) and the pooled mean is over valid positions. Appending padding never
changes an embedding, in training mode too. Tensors are kept channels-last. Default sizes: 0.76M parameters.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from parastyle.nn.encoders import ENCODERS
from parastyle.nn.encoders.blocks import MaskedBatchNorm, check_min_frames, conv_out_lengths, lengths_mask, \
    mask_lengths


def _valid(mask: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` bool -> ``(B, 1, 1, T)`` float multiplier."""
    return mask[:, None, None, :].float()


def conv_bn_eval(conv: nn.Conv2d, bn: MaskedBatchNorm, x: torch.Tensor, mask: torch.Tensor,
                 relu: bool = False) -> torch.Tensor:
    """Eval mode: ``bn(conv(x), mask)`` (then ReLU) with the BatchNorm folded into the convolution
    (weight x scale, bias = shift): one convolution and one masking pass instead of a convolution and
    three elementwise passes. Equals the unfolded computation to float rounding."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    bias = shift if conv.bias is None else conv.bias * scale + shift
    y = nn.functional.conv2d(x, conv.weight * scale.view(-1, 1, 1, 1), bias, conv.stride, conv.padding,
                             conv.dilation, conv.groups)
    y = y.mul_(_valid(mask).to(y.dtype))
    return y.relu_() if relu else y


class ResidualBlock(nn.Module):
    """``ReLU(BN(conv3x3(ReLU(BN(conv3x3_s(x))))) + shortcut(x))`` with masks over time.

    ``forward(x (B, C, F, T), mask (B, T)) -> (y (B, C', F', T'), mask (B, T'))``; padded frames of y are 0."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = MaskedBatchNorm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = MaskedBatchNorm(out_ch)
        self.shortcut = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)
            self.bn_sc = MaskedBatchNorm(out_ch)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor):
        out_len = conv_out_lengths(lengths, 3, self.stride, 1)
        omask = lengths_mask(out_len, (x.shape[-1] + 2 - 3) // self.stride + 1)
        if not self.training:                                        # same values, fewer passes over memory
            h = conv_bn_eval(self.conv1, self.bn1, x, omask, relu=True)
            h = conv_bn_eval(self.conv2, self.bn2, h, omask)
            h.add_(x if self.shortcut is None else conv_bn_eval(self.shortcut, self.bn_sc, x, omask))
            return h.relu_(), omask, out_len
        h = torch.relu(self.bn1(self.conv1(x), omask))              # x is 0 on padded frames
        h = self.bn2(self.conv2(h), omask)
        sc = x if self.shortcut is None else self.bn_sc(self.shortcut(x), omask)
        return torch.relu(h + sc), omask, out_len                    # 0 on padded frames (BN outputs 0 there)


@ENCODERS.register("cnn")
class CNNEncoder(nn.Module):
    """ParaMETA CNN backbone (2-D ResNet).

    Args:
        input_dim: mel bins D (80).
        stem_channels: channels of the stem conv (32).
        blocks: ``[[out_channels, stride], ...]`` of the residual blocks
            (default ``[[64, 2], [64, 1], [128, 2], [128, 1]]``).
        output_dim: size of the output (768, the META embedding).
        dropout: dropout before the output Linear (0 = none).
        channels_last: run the convolutions on channels-last tensors (faster on CPU; same values).
    """

    def __init__(self, input_dim: int, stem_channels: int = 32,
                 blocks: Sequence[Sequence[int]] = ((64, 2), (64, 1), (128, 2), (128, 1)),
                 output_dim: int = 768, dropout: float = 0.0, channels_last: bool = True):
        super().__init__()
        self.stem = nn.Conv2d(1, stem_channels, 3, padding=1, bias=False)
        self.stem_bn = MaskedBatchNorm(stem_channels)
        self.blocks = nn.ModuleList()
        ch = stem_channels
        for spec in blocks:
            if len(spec) != 2:
                raise ValueError(f"cnn encoder: each block is [out_channels, stride], got {list(spec)}")
            self.blocks.append(ResidualBlock(ch, int(spec[0]), int(spec[1])))
            ch = int(spec[0])
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(ch, output_dim)
        self.channels_last = channels_last
        self.frame_dim, self.output_dim = ch, output_dim

    def _run(self, x: torch.Tensor, mask: torch.Tensor):
        lengths = mask_lengths(mask, "cnn encoder")
        h = x.masked_fill(~mask.unsqueeze(-1), 0.0).transpose(1, 2).unsqueeze(1)     # (B, 1, F, T)
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        if self.training:
            h = torch.relu(self.stem_bn(self.stem(h), mask))
        else:
            h = conv_bn_eval(self.stem, self.stem_bn, h, mask, relu=True)
        m, n = mask, lengths
        for block in self.blocks:
            h, m, n = block(h, m, n)
        check_min_frames(lengths, n, "cnn encoder", 1)
        return h, m, n

    def forward_frames(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(h (B, T', C * F'), mask (B, T'))``: the last block's map
        with frequency folded into channels; padded rows are 0."""
        h, m, _ = self._run(x, mask)
        B, C, Fp, Tp = h.shape
        return h.permute(0, 3, 1, 2).reshape(B, Tp, C * Fp), m

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D)``, ``mask (B, T)`` -> ``(B, output_dim)``: Linear of the mean over (mel, valid time)."""
        h, _, n = self._run(x, mask)
        pooled = h.sum((2, 3)) / (n.to(h.dtype) * h.shape[2]).unsqueeze(1)
        return self.out(self.dropout(pooled))
