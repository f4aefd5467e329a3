"""Building blocks of the ParaMETA backbones: mask rules of convolutions, masked BatchNorm,
post-norm attention blocks on ``scaled_dot_product_attention``.

Mask rule of a convolution over time
------------------------------------
Padded frames are set to zero before every convolution. A convolution with kernel ``k``,
stride ``s``, dilation ``d`` and zero padding ``p`` on each side maps an utterance of ``L``
valid frames to ``floor((L + 2p - d(k-1) - 1) / s) + 1`` valid output frames
(:func:`conv_out_lengths`, PyTorch's own output-length formula): output frame ``j`` is valid
iff its whole receptive field lies inside the valid frames extended by the convolution's own
zero padding, ``[-p, L + p)``. Inside that range a padded (zeroed) frame of the batch plays
exactly the role of the zero padding of the utterance run alone, so every valid output frame is
bit-for-bit what the utterance alone would give, and every frame past the valid length is
marked invalid (and zeroed before the next convolution). For the unpadded strided fronts of the
backbones (``kernel = stride = 4``, ``p = 0``) this is "valid iff its whole window is valid";
the trailing ``L mod 4`` frames are dropped, as PyTorch drops them for the utterance alone.

Statistics over frames (BatchNorm in training mode, pooling) use valid positions only.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_positions(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(length, dim)`` sinusoidal position table, ``PE[t, 2k] = sin(t / 10000^(2k/dim))``, cos for odd columns."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return pe.to(dtype)


def conv_out_lengths(lengths: torch.Tensor, kernel_size: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> torch.Tensor:
    """``(B,)`` valid input lengths -> ``(B,)`` valid output lengths of a convolution (see module doc)."""
    out = torch.div(lengths + 2 * padding - dilation * (kernel_size - 1) - 1, stride, rounding_mode="floor") + 1
    return out.clamp(min=0)


def lengths_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool, True on the first ``lengths[b]`` positions."""
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def mask_lengths(mask: torch.Tensor, who: str) -> torch.Tensor:
    """``(B, T)`` left-aligned bool mask -> ``(B,)`` lengths; raises if a row has no valid frame or is not
    left-aligned (valid frames first, as the collate function writes them)."""
    if mask.dim() != 2 or mask.dtype != torch.bool:
        raise ValueError(f"{who}: mask must be a (B, T) bool tensor, got {tuple(mask.shape)} {mask.dtype}")
    lengths = mask.sum(1)
    if bool((lengths == 0).any()):
        raise ValueError(f"{who}: an utterance has no valid frame (mask row all False)")
    if not torch.equal(mask, lengths_mask(lengths, mask.shape[1])):
        raise ValueError(f"{who}: mask is not left-aligned (valid frames must come first in every row)")
    return lengths


def check_min_frames(lengths: torch.Tensor, out_lengths: torch.Tensor, who: str, need: int) -> None:
    """Raise when an utterance is too short to give one valid frame after a strided front."""
    if bool((out_lengths <= 0).any()):
        i = int((out_lengths <= 0).nonzero()[0, 0])
        raise ValueError(f"{who}: utterance {i} of the batch has {int(lengths[i])} valid frames; "
                         f"the front needs at least {need}")


class _MaskedBatchNormFn(torch.autograd.Function):
    """Batch normalisation over the valid positions of a channels-at-dim-1 tensor, in one fused
    forward and one fused backward (the statistics' gradients included)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)   # statistics in float32 under AMP
    def forward(ctx, x, m, weight, bias, count, eps):
        dims = [0] + list(range(2, x.dim()))
        xm = x * m
        mean = xm.sum(dims) / count
        shape = [1, -1] + [1] * (x.dim() - 2)
        xc = (x - mean.view(shape)) * m
        var = (xc * xc).sum(dims) / count
        invstd = torch.rsqrt(var + eps)
        xhat = xc * invstd.view(shape)
        y = xhat * weight.view(shape) + bias.view(shape) * m
        ctx.save_for_backward(xhat, m, weight, invstd)
        ctx.count = count
        return y, mean, var

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, gy, _gmean, _gvar):
        xhat, m, weight, invstd = ctx.saved_tensors
        dims = [0] + list(range(2, xhat.dim()))
        shape = [1, -1] + [1] * (xhat.dim() - 2)
        gy = gy * m
        sum_gy = gy.sum(dims)
        sum_gy_xhat = (gy * xhat).sum(dims)
        n = ctx.count
        gx = (gy - (sum_gy / n).view(shape) * m - xhat * (sum_gy_xhat / n).view(shape)) \
            * (weight * invstd).view(shape)
        return gx, None, sum_gy_xhat, sum_gy, None, None


class MaskedBatchNorm(nn.Module):
    """BatchNorm over channel dim 1 of ``x (B, C, ..., T)`` whose statistics use valid time positions only.

    ``mask (B, T)`` marks valid frames of the last axis. In training mode, mean and (biased)
    variance per channel are taken over the valid positions of the batch (every other axis
    included) and the running statistics are updated with them (unbiased variance, momentum as
    ``nn.BatchNorm``); in eval mode the running statistics are used. Outputs at padded positions
    are 0. Appending padding therefore changes neither the output nor the running statistics.
    ``forward`` equals ``nn.BatchNorm1d/2d`` applied to the valid positions alone. Under DDP the
    statistics are those of each rank's local batch (as ``nn.BatchNorm``).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        shape = [x.shape[0]] + [1] * (x.dim() - 2) + [x.shape[-1]]
        m = mask.view(shape).to(x.dtype)
        if not self.training:
            s = [1, -1] + [1] * (x.dim() - 2)
            scale = self.weight * torch.rsqrt(self.running_var + self.eps)
            shift = self.bias - self.running_mean * scale
            return (x * scale.view(s) + shift.view(s)) * m
        per_frame = 1
        for d in x.shape[2:-1]:
            per_frame *= d
        count = float(mask.sum()) * per_frame
        if count < 2:
            raise ValueError(f"MaskedBatchNorm: {count:.0f} valid value(s) per channel in a training batch; "
                             f"batch statistics need at least 2")
        y, mean, var = _MaskedBatchNormFn.apply(x, m, self.weight, self.bias, count, self.eps)
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.mul_(1 - self.momentum).add_(mean.detach(), alpha=self.momentum)
            self.running_var.mul_(1 - self.momentum).add_(var.detach() * (count / (count - 1)), alpha=self.momentum)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class PostNormAttentionBlock(nn.Module):
    """Post-norm attention block (the ParaMETA backbones')::

        x = LN(x + Dropout(MHA(x, kv)))          kv = x (self-attention) or given (cross-attention)
        x = LN(x + Dropout(FFN(x))),             FFN = Linear(d, 4d) -> GELU -> Dropout -> Linear(4d, d)

    Multi-head attention runs on ``F.scaled_dot_product_attention`` with a boolean key mask.
    Parameters as ``nn.MultiheadAttention`` (q, k, v and output projections with biases).

    Shapes: ``x (B, Q, d)``, ``kv (B, N, d)`` or None, ``key_mask (B, N)`` bool (True = valid key) or
    None (all keys valid).
    """

    def __init__(self, d_model: int, nhead: int = 4, dim_feedforward: Optional[int] = None, dropout: float = 0.1,
                 cross: bool = False):
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"d_model={d_model} is not divisible by nhead={nhead}")
        self.d_model, self.nhead, self.cross = d_model, nhead, cross
        dim_feedforward = 4 * d_model if dim_feedforward is None else dim_feedforward
        if cross:
            self.q_proj = nn.Linear(d_model, d_model)
            self.kv_proj = nn.Linear(d_model, 2 * d_model)
        else:
            self.qkv_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, dim_feedforward)
        self.ff2 = nn.Linear(dim_feedforward, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = dropout

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        B, N, _ = t.shape
        return t.view(B, N, self.nhead, self.d_model // self.nhead).transpose(1, 2)

    def attention(self, x: torch.Tensor, kv: Optional[torch.Tensor], key_mask: Optional[torch.Tensor]) -> torch.Tensor:
        B, Q, d = x.shape
        if self.cross:
            q = self.q_proj(x)
            k, v = self.kv_proj(kv).chunk(2, dim=-1)
        else:
            q, k, v = self.qkv_proj(x).chunk(3, dim=-1)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        p = self.dropout if self.training else 0.0
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # bf16 autocast on the CPU: the projections run in bfloat16, the attention itself in float32
            # (the CPU attention kernel is slower in bfloat16 than in float32 at these sizes, and the
            # softmax keeps float32 precision); see bench/bench_backbones.py --amp bf16
            with torch.autocast("cpu", enabled=False):
                o = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask, dropout_p=p)
        else:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        return self.out_proj(o.transpose(1, 2).reshape(B, Q, d))

    def forward(self, x: torch.Tensor, kv: Optional[torch.Tensor] = None,
                key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.cross and kv is None:
            raise ValueError("cross-attention block needs kv")
        p = self.dropout if self.training else 0.0
        x = self.norm1(x + F.dropout(self.attention(x, kv, key_mask), p, self.training))
        h = self.ff2(F.dropout(F.gelu(self.ff1(x)), p, self.training))
        return self.norm2(x + F.dropout(h, p, self.training))


def strided_front(conv: nn.Module, x: torch.Tensor, lengths: torch.Tensor, who: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Apply a ``Conv1d`` front to ``x (B, T, D)`` -> ``(h (B, T', C), valid lengths (B,))`` (mask rule above)."""
    k, s, p, d = conv.kernel_size[0], conv.stride[0], conv.padding[0], conv.dilation[0]
    out_len = conv_out_lengths(lengths, k, s, p, d)
    check_min_frames(lengths, out_len, who, d * (k - 1) + 1 - 2 * p)
    x = x.masked_fill(~lengths_mask(lengths, x.shape[1]).unsqueeze(-1), 0.0)
    h = conv(x.transpose(1, 2)).transpose(1, 2)
    return h, out_len
