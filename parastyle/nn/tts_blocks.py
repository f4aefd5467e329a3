"""Blocks of the non-autoregressive acoustic model: FFT blocks, variance predictors, length
regulation, monotonic alignment search and the alignment-derived targets.

Shapes: phones ``(B, N)``, hidden ``(B, N, H)``, frames ``(B, T, ...)``; masks are bool, True on
valid positions. Every block zeroes padded positions of its output and never lets a padded
position influence a valid one (attention masks padded keys, convolutions see zeros there, as
they would see their own zero padding), so outputs on valid positions do not depend on padding.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def sequence_mask(lengths: torch.Tensor, max_len: Optional[int] = None) -> torch.Tensor:
    """``(B, max_len)`` bool, True where ``position < length``."""
    max_len = int(lengths.max()) if max_len is None else int(max_len)
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def sinusoid_positions(length: int, dim: int, device=None) -> torch.Tensor:
    """``(length, dim)`` sinusoidal position encoding (Transformer)."""
    pos = torch.arange(length, dtype=torch.float32, device=device)[:, None]
    i = torch.arange(0, dim, 2, dtype=torch.float32, device=device)
    angle = pos / torch.pow(10000.0, i / dim)
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return pe


class StyleConditioner(nn.Module):
    """Style vector ``(B, S)`` -> conditioning ``(B, C)``: LayerNorm then Linear (as the ParaMETA
    authors map their 768-d embedding to the 256 conditioning channels)."""

    def __init__(self, style_dim: int, cond_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(style_dim)
        self.proj = nn.Linear(style_dim, cond_dim)

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(style))


class FiLM(nn.Module):
    """``x * (1 + gamma(c)) + beta(c)``; initialised to the identity."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        if cond is None:
            return x
        gamma, beta = self.proj(cond).unsqueeze(1).chunk(2, dim=-1)
        return x * (1.0 + gamma) + beta


class FFTBlock(nn.Module):
    """Feed-forward Transformer block (FastSpeech): self-attention + 2-layer 1-D conv FFN, post-LN,
    FiLM by the style conditioning after each sub-layer."""

    def __init__(self, hidden: int, filter_size: int, heads: int, kernel_size: int, dropout: float,
                 cond_dim: Optional[int] = None):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"FFTBlock kernel_size must be odd, got {kernel_size}")
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(hidden)
        self.conv1 = nn.Conv1d(hidden, filter_size, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv1d(filter_size, hidden, kernel_size, padding=kernel_size // 2)
        self.norm2 = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.film1 = FiLM(cond_dim, hidden) if cond_dim else None
        self.film2 = FiLM(cond_dim, hidden) if cond_dim else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)
        x = x * m
        a, _ = self.attn(x, x, x, key_padding_mask=~mask, need_weights=False)
        x = self.norm1(x + self.drop(a))
        if self.film1 is not None:
            x = self.film1(x, cond)
        x = x * m
        mt = m.transpose(1, 2)
        y = self.conv2(self.drop(F.relu(self.conv1(x.transpose(1, 2)))) * mt).transpose(1, 2)
        x = self.norm2(x + self.drop(y))
        if self.film2 is not None:
            x = self.film2(x, cond)
        return x * m


class FFTStack(nn.Module):
    """Position encoding + ``layers`` FFT blocks."""

    def __init__(self, hidden: int, filter_size: int, heads: int, layers: int, kernel_size: int,
                 dropout: float, cond_dim: Optional[int] = None):
        super().__init__()
        self.hidden = hidden
        self.blocks = nn.ModuleList(FFTBlock(hidden, filter_size, heads, kernel_size, dropout, cond_dim)
                                    for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + sinusoid_positions(x.shape[1], self.hidden, x.device).unsqueeze(0)
        for b in self.blocks:
            x = b(x, mask, cond)
        return x


class VariancePredictor(nn.Module):
    """Two (conv1d -> ReLU -> LayerNorm -> dropout) layers, FiLM by the style, linear to one value
    per position: ``(B, N, H) -> (B, N)`` (``out_dim`` given: ``(B, N, out_dim)``), 0 on padded positions."""

    def __init__(self, hidden: int, filter_size: int, kernel_size: int, dropout: float,
                 cond_dim: Optional[int] = None, out_dim: Optional[int] = None):
        super().__init__()
        self.conv1 = nn.Conv1d(hidden, filter_size, kernel_size, padding=kernel_size // 2)
        self.norm1 = nn.LayerNorm(filter_size)
        self.conv2 = nn.Conv1d(filter_size, filter_size, kernel_size, padding=kernel_size // 2)
        self.norm2 = nn.LayerNorm(filter_size)
        self.drop = nn.Dropout(dropout)
        self.film = FiLM(cond_dim, filter_size) if cond_dim else None
        self.out_dim = out_dim
        self.out = nn.Linear(filter_size, 1 if out_dim is None else int(out_dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)
        y = self.drop(self.norm1(F.relu(self.conv1((x * m).transpose(1, 2)).transpose(1, 2))))
        if self.film is not None:
            y = self.film(y, cond)
        y = self.drop(self.norm2(F.relu(self.conv2((y * m).transpose(1, 2)).transpose(1, 2))))
        y = self.out(y)
        if self.out_dim is None:
            return y.squeeze(-1) * mask.to(x.dtype)
        return y * m


def alignment_from_durations(durations: torch.Tensor, max_frames: Optional[int] = None) -> torch.Tensor:
    """Hard alignment ``(B, T, N)`` (1 where frame t belongs to phone n) from integer durations ``(B, N)``."""
    durations = durations.long()
    ends = torch.cumsum(durations, dim=1)                       # (B, N)
    starts = ends - durations
    total = int(ends[:, -1].max()) if max_frames is None else int(max_frames)
    t = torch.arange(total, device=durations.device)[None, :, None]
    return ((t >= starts[:, None, :]) & (t < ends[:, None, :])).float()


def length_regulate(h: torch.Tensor, durations: torch.Tensor, max_frames: Optional[int] = None):
    """Repeat phone states by their durations: ``h (B, N, H)``, ``durations (B, N)`` int ->
    ``(frames (B, T, H), frame_lengths (B,))``; frames past an utterance's total are zero."""
    attn = alignment_from_durations(durations, max_frames)
    return torch.bmm(attn, h), durations.long().sum(1)


def phone_position_features(durations: torch.Tensor, attn: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-frame position in its phone ``(B, T, 2)`` from integer ``durations (B, N)``: the relative
    position ``(k + 0.5) / d - 0.5`` of the frame (k-th of d frames of its phone, in ``(-0.5, 0.5)``) and
    ``log(d)``; zero on frames past the utterance. ``attn`` is ``alignment_from_durations(durations, T)``."""
    d = durations.long()
    if attn is None:
        attn = alignment_from_durations(d)
    df = d.to(attn.dtype)
    starts = (torch.cumsum(d, dim=1) - d).to(attn.dtype)
    d_t = torch.bmm(attn, df.unsqueeze(-1)).squeeze(-1)                     # (B, T)
    s_t = torch.bmm(attn, starts.unsqueeze(-1)).squeeze(-1)
    t = torch.arange(attn.shape[1], device=attn.device, dtype=attn.dtype)[None, :]
    valid = d_t > 0
    rel = torch.where(valid, (t - s_t + 0.5) / d_t.clamp(min=1) - 0.5, torch.zeros_like(d_t))
    logd = torch.where(valid, torch.log(d_t.clamp(min=1)), torch.zeros_like(d_t))
    return torch.stack([rel, logd], dim=-1)


class ConvPostnet(nn.Module):
    """Residual conv postnet (Tacotron 2 / FastSpeech 2, without batch norm so padding cannot leak):
    ``layers`` 1-D convolutions over frames, tanh and dropout between them; ``(B, T, D) -> (B, T, D)``,
    zero on padded frames. The last convolution starts at zero (the postnet starts as the identity
    of its caller's residual sum)."""

    def __init__(self, n_mels: int, channels: int, layers: int, kernel_size: int = 5, dropout: float = 0.1):
        super().__init__()
        if layers < 2:
            raise ValueError(f"ConvPostnet needs at least 2 layers, got {layers}")
        if kernel_size % 2 != 1:
            raise ValueError(f"ConvPostnet kernel_size must be odd, got {kernel_size}")
        dims = [n_mels] + [channels] * (layers - 1) + [n_mels]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel_size, padding=kernel_size // 2)
                                   for a, b in zip(dims[:-1], dims[1:]))
        nn.init.zeros_(self.convs[-1].weight)
        nn.init.zeros_(self.convs[-1].bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(1).to(x.dtype)
        y = x.transpose(1, 2) * m
        for i, conv in enumerate(self.convs):
            y = conv(y)
            if i < len(self.convs) - 1:
                y = self.drop(torch.tanh(y))
            y = y * m
        return y.transpose(1, 2)


class ReferenceEncoder(nn.Module):
    """Utterance-level latent of a reference log-mel (the voice that a class-level style vector leaves out):
    ``layers`` 1-D convolutions (kernel 3, ReLU) over the frames, zero on padded frames after each, a masked
    mean over time, then ``Linear -> tanh`` to ``dim``. ``(B, T, n_mels), (B, T) mask -> (B, dim)``; the
    global mean and the small ``dim`` keep it from carrying the utterance's phonetic content."""

    def __init__(self, n_mels: int, channels: int = 128, layers: int = 3, dim: int = 16):
        super().__init__()
        if layers < 1 or dim < 1:
            raise ValueError(f"ReferenceEncoder needs layers >= 1 and dim >= 1, got {layers}, {dim}")
        dims = [n_mels] + [channels] * layers
        self.convs = nn.ModuleList(nn.Conv1d(a, b, 3, padding=1) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(channels, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(1).to(x.dtype)
        y = x.transpose(1, 2) * m
        for conv in self.convs:
            y = torch.relu(conv(y)) * m
        pooled = y.sum(-1) / m.sum(-1).clamp(min=1.0)
        return torch.tanh(self.out(pooled))


class MelPatchDiscriminator(nn.Module):
    """Patch discriminator over log-mel segments ``(B, L, M)`` (time x frequency as a 2-D image):
    ``len(channels)`` 3x3 convolutions with leaky ReLU, strides halving the frequency axis in every layer
    and the time axis in the inner ones, then a 3x3 convolution to one score per patch. Weight norm on
    every convolution (HiFi-GAN's discriminators). Returns ``(scores (B, L', M'), [feature maps])``."""

    def __init__(self, channels=(32, 64, 128, 128), slope: float = 0.2):
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels or min(channels) < 1:
            raise ValueError(f"MelPatchDiscriminator needs positive channels, got {channels}")
        n = len(channels)
        strides = [(2 if 0 < i < n - 1 else 1, 2) for i in range(n)]
        dims = [1] + channels
        self.convs = nn.ModuleList(weight_norm(nn.Conv2d(a, b, 3, stride=st, padding=1))
                                   for a, b, st in zip(dims[:-1], dims[1:], strides))
        self.out = weight_norm(nn.Conv2d(channels[-1], 1, 3, padding=1))
        self.slope = float(slope)

    def forward(self, x: torch.Tensor):
        y, feats = x.unsqueeze(1), []
        for conv in self.convs:
            y = F.leaky_relu(conv(y), self.slope)
            feats.append(y)
        y = self.out(y)
        feats.append(y)
        return y.flatten(1), feats


def random_segments(x: torch.Tensor, lengths: torch.Tensor, starts: torch.Tensor, size: int) -> torch.Tensor:
    """``x (B, T, D)`` -> ``(B, size, D)``: frames ``starts[b] .. starts[b] + size - 1`` of each utterance;
    every segment must lie inside its utterance's ``lengths[b]`` valid frames."""
    if bool(((starts < 0) | (starts + size > lengths)).any()):
        raise ValueError(f"segments of {size} frames at {starts.tolist()} leave utterances of "
                         f"{lengths.tolist()} frames")
    idx = starts[:, None] + torch.arange(size, device=x.device)[None, :]
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def gaussian_log_likelihood(y: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """``log N(y_t; mu_n, I)`` for every frame/phone pair: ``y (B, T, D)``, ``mu (B, N, D)`` -> ``(B, N, T)``."""
    d = y.shape[-1]
    const = -0.5 * d * math.log(2 * math.pi)
    yy = (y * y).sum(-1)                                        # (B, T)
    mm = (mu * mu).sum(-1)                                      # (B, N)
    cross = torch.bmm(mu, y.transpose(1, 2))                    # (B, N, T)
    return const - 0.5 * (mm[:, :, None] - 2 * cross + yy[:, None, :])


@torch.no_grad()
def monotonic_alignment(log_p: torch.Tensor, phone_mask: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """Monotonic alignment search (Glow-TTS): the monotonic, surjective path through
    ``log_p (B, N, T)`` maximising the summed score, every phone at least one frame; returns the
    hard path ``(B, N, T)`` (0/1). Uses the ``monotonic-alignment-search`` package (Cython).
    Needs ``frames >= phones`` per utterance (ValueError otherwise)."""
    from monotonic_alignment_search import maximum_path
    n, t = phone_mask.sum(1), frame_mask.sum(1)
    if bool((t < n).any()):
        i = int(torch.nonzero(t < n)[0])
        raise ValueError(f"monotonic alignment: item {i} has {int(t[i])} frames for {int(n[i])} phones "
                         f"(needs at least one frame per phone)")
    mask = phone_mask[:, :, None] & frame_mask[:, None, :]
    return maximum_path(log_p.detach().float().contiguous(), mask.float()).to(log_p.dtype)


def average_by_duration(values: torch.Tensor, durations: torch.Tensor, ignore_zero: bool = False) -> torch.Tensor:
    """Per-phone mean of frame values ``(B, T)`` under integer ``durations (B, N)`` -> ``(B, N)``.

    ``ignore_zero``: average only the non-zero frames (F0 of voiced frames); a phone with no
    such frame gets 0. Phones of duration 0 get 0.
    """
    attn = alignment_from_durations(durations, values.shape[1])    # (B, T, N)
    if ignore_zero:
        attn = attn * (values != 0).to(attn.dtype)[:, :, None]
    sums = torch.bmm(values.unsqueeze(1), attn).squeeze(1)          # (B, N)
    counts = attn.sum(1)
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.zeros_like(sums))
