"""HiFi-GAN building blocks (Kong et al. 2020): generator, multi-period and multi-scale discriminators.

Generator (mel ``(B, M, T)`` -> waveform ``(B, 1, T * prod(upsample_rates))``)::

    x = Conv1d(M, C, 7)(mel)
    for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
        x = ConvTranspose1d(C / 2^i, C / 2^(i+1), k, stride u, padding (k - u) / 2)(LeakyReLU_0.1(x))
        x = mean_j ResBlock(kernel_j, dilations_j)(x)            # multi-receptive-field fusion (MRF)
    y = tanh(Conv1d(C / 2^n, 1, 7)(LeakyReLU_0.01(x)))

    ResBlock (type 1): for d in dilations: x = x + Conv1d_{k,1}(LReLU(Conv1d_{k,d}(LReLU(x))))

With ``k - u`` even every transposed convolution maps T frames to exactly ``T * u`` samples, so the
output has ``frames x hop`` samples. Convolutions are weight-normalised (spectral norm in the first
scale discriminator), as in the paper.

Padding: given frame ``lengths`` every activation is zeroed beyond its utterance's valid length
(at its own time resolution) after each layer, so a padded batch gives, on each utterance's valid
samples, the same output as that utterance alone (the convolutions then see the zeros their own
padding would give).

Discriminators return ``(scores, feature_maps)``: a list of the final score maps (one per period
or scale) and a list of the lists of intermediate activations (for the feature-matching loss).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

LRELU_SLOPE = 0.1


def _pad(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


def time_mask(lengths: Optional[torch.Tensor], steps: int, scale: int, device) -> Optional[torch.Tensor]:
    """``(B, 1, steps)`` float mask: 1 on the first ``lengths * scale`` positions (None without lengths)."""
    if lengths is None:
        return None
    pos = torch.arange(steps, device=device)[None, :]
    return (pos < (lengths.to(device)[:, None] * scale)).unsqueeze(1).float()


def _apply(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    return x if mask is None else x * mask


class ResBlock(nn.Module):
    """HiFi-GAN ResBlock1: ``len(dilations)`` pairs (dilated conv, conv) with residual connections."""

    def __init__(self, channels: int, kernel_size: int = 3, dilations: Sequence[int] = (1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList([weight_norm(nn.Conv1d(channels, channels, kernel_size, dilation=d,
                                                           padding=_pad(kernel_size, d))) for d in dilations])
        self.convs2 = nn.ModuleList([weight_norm(nn.Conv1d(channels, channels, kernel_size,
                                                           padding=_pad(kernel_size))) for _ in dilations])

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = _apply(c1(F.leaky_relu(x, LRELU_SLOPE)), mask)
            xt = _apply(c2(F.leaky_relu(xt, LRELU_SLOPE)), mask)
            x = xt + x
        return x


class HiFiGANGenerator(nn.Module):
    """Mel ``(B, in_channels, T)`` -> waveform ``(B, 1, T * hop)`` with ``hop = prod(upsample_rates)``.

    Defaults are the paper's V1 configuration (as the ParaMETA authors' VITS decoder uses it).
    """

    def __init__(self, in_channels: int = 80, upsample_initial_channel: int = 512,
                 upsample_rates: Sequence[int] = (8, 8, 2, 2), upsample_kernel_sizes: Sequence[int] = (16, 16, 4, 4),
                 resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
                 resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))):
        super().__init__()
        if len(upsample_rates) != len(upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have the same length")
        if len(resblock_kernel_sizes) != len(resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes must have the same length")
        for u, k in zip(upsample_rates, upsample_kernel_sizes):
            if k < u or (k - u) % 2:
                raise ValueError(f"upsample kernel {k} with rate {u}: need kernel >= rate and kernel - rate even "
                                 f"(output length frames x hop)")
        if upsample_initial_channel % (2 ** len(upsample_rates)):
            raise ValueError(f"upsample_initial_channel {upsample_initial_channel} must be divisible by "
                             f"2^{len(upsample_rates)}")
        self.upsample_rates = [int(u) for u in upsample_rates]
        self.hop_length = 1
        for u in self.upsample_rates:
            self.hop_length *= u
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = weight_norm(nn.Conv1d(in_channels, upsample_initial_channel, 7, padding=3))
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for u, k in zip(upsample_rates, upsample_kernel_sizes):
            self.ups.append(weight_norm(nn.ConvTranspose1d(ch, ch // 2, k, stride=u, padding=(k - u) // 2)))
            ch //= 2
            for rk, rd in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(ResBlock(ch, rk, rd))
        self.conv_post = weight_norm(nn.Conv1d(ch, 1, 7, padding=3))

    def forward(self, mel: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``mel (B, M, T)``, optional frame ``lengths (B,)`` -> ``(B, 1, T * hop)``."""
        scale = 1
        mask = time_mask(lengths, mel.shape[-1], scale, mel.device)
        x = _apply(self.conv_pre(_apply(mel, mask)), mask)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            scale *= self.upsample_rates[i]
            mask = time_mask(lengths, x.shape[-1], scale, x.device)
            x = _apply(x, mask)
            xs = None
            for j in range(self.num_kernels):
                r = self.resblocks[i * self.num_kernels + j](x, mask)
                xs = r if xs is None else xs + r
            x = xs / self.num_kernels
        x = torch.tanh(self.conv_post(F.leaky_relu(x)))
        return _apply(x, mask)


class PeriodDiscriminator(nn.Module):
    """Waveform reshaped to ``(B, 1, S / p, p)``; 2-D convs with kernel (5, 1), stride (3, 1)."""

    def __init__(self, period: int, channels: Sequence[int] = (32, 128, 512, 1024, 1024), kernel_size: int = 5,
                 stride: int = 3):
        super().__init__()
        self.period = int(period)
        chans = [1] + list(channels)
        self.convs = nn.ModuleList()
        for i in range(len(channels)):
            s = stride if i < len(channels) - 1 else 1
            self.convs.append(weight_norm(nn.Conv2d(chans[i], chans[i + 1], (kernel_size, 1), (s, 1),
                                                    padding=(_pad(kernel_size), 0))))
        self.conv_post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, y: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        b, c, t = y.shape
        if t % self.period:
            y = F.pad(y, (0, self.period - t % self.period), "reflect")
            t = y.shape[-1]
        x = y.view(b, c, t // self.period, self.period)
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiPeriodDiscriminator(nn.Module):
    """One :class:`PeriodDiscriminator` per period (paper: 2, 3, 5, 7, 11)."""

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), channels: Sequence[int] = (32, 128, 512, 1024, 1024)):
        super().__init__()
        self.discriminators = nn.ModuleList([PeriodDiscriminator(p, channels) for p in periods])

    def forward(self, y: torch.Tensor) -> Tuple[List[torch.Tensor], List[List[torch.Tensor]]]:
        scores, fmaps = [], []
        for d in self.discriminators:
            s, f = d(y)
            scores.append(s)
            fmaps.append(f)
        return scores, fmaps


class ScaleDiscriminator(nn.Module):
    """MelGAN-style 1-D discriminator: grouped strided convs (kernel 41), the paper's channel plan."""

    def __init__(self, channels: Sequence[int] = (128, 128, 256, 512, 1024, 1024, 1024), use_spectral_norm: bool = False):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        c = list(channels)
        # (in, out, kernel, stride, groups) as in HiFi-GAN's MSD; groups shrink with the channel scale
        plan = [(1, c[0], 15, 1, 1), (c[0], c[1], 41, 2, 4), (c[1], c[2], 41, 2, 16), (c[2], c[3], 41, 4, 16),
                (c[3], c[4], 41, 4, 16), (c[4], c[5], 41, 1, 16), (c[5], c[6], 5, 1, 1)]
        self.convs = nn.ModuleList()
        for cin, cout, k, s, g in plan:
            while g > 1 and (cin % g or cout % g):
                g //= 2
            self.convs.append(norm(nn.Conv1d(cin, cout, k, s, groups=g, padding=_pad(k))))
        self.conv_post = norm(nn.Conv1d(c[6], 1, 3, 1, padding=1))

    def forward(self, y: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        fmap = []
        x = y
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiScaleDiscriminator(nn.Module):
    """Three :class:`ScaleDiscriminator` on the raw, 2x and 4x average-pooled waveform (first with spectral norm)."""

    def __init__(self, num_scales: int = 3, channels: Sequence[int] = (128, 128, 256, 512, 1024, 1024, 1024)):
        super().__init__()
        self.discriminators = nn.ModuleList([ScaleDiscriminator(channels, use_spectral_norm=(i == 0))
                                             for i in range(num_scales)])
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, y: torch.Tensor) -> Tuple[List[torch.Tensor], List[List[torch.Tensor]]]:
        scores, fmaps = [], []
        for i, d in enumerate(self.discriminators):
            if i > 0:
                y = self.pool(y)
            s, f = d(y)
            scores.append(s)
            fmaps.append(f)
        return scores, fmaps


# ---------------------------------------------------------------------------- losses
def discriminator_loss(real_scores: List[torch.Tensor], fake_scores: List[torch.Tensor]) -> torch.Tensor:
    """LSGAN discriminator loss: ``sum_k mean((1 - D_k(y))^2) + mean(D_k(G(s))^2)``."""
    loss = real_scores[0].new_zeros(())
    for r, g in zip(real_scores, fake_scores):
        loss = loss + torch.mean((1 - r) ** 2) + torch.mean(g ** 2)
    return loss


def generator_adversarial_loss(fake_scores: List[torch.Tensor]) -> torch.Tensor:
    """LSGAN generator loss: ``sum_k mean((1 - D_k(G(s)))^2)``."""
    loss = fake_scores[0].new_zeros(())
    for g in fake_scores:
        loss = loss + torch.mean((1 - g) ** 2)
    return loss


def feature_matching_loss(real_fmaps: List[List[torch.Tensor]], fake_fmaps: List[List[torch.Tensor]]) -> torch.Tensor:
    """``sum_k sum_i mean|D_k^i(y) - D_k^i(G(s))|`` (real features detached), unweighted."""
    loss = real_fmaps[0][0].new_zeros(())
    for dr, dg in zip(real_fmaps, fake_fmaps):
        for r, g in zip(dr, dg):
            loss = loss + torch.mean(torch.abs(r.detach() - g))
    return loss
