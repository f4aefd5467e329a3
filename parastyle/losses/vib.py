"""Variational information bottleneck terms: Gaussian KL to N(0, I) and the reparameterisation.

With an encoder posterior q(z | x) = N(mu, diag(var)) over a latent of dimension Z and the prior
p(z) = N(0, I), the KL divergence in closed form is

    KL(q || p) = 1/2 * sum_{d=1..Z} (var_d + mu_d^2 - 1 - log var_d)

For frame-level latents ``(B, T, Z)`` it is computed per frame and averaged over the valid frames
of the batch (mask True = valid); for utterance latents ``(B, Z)`` it is averaged over the batch.
"""
from __future__ import annotations

from typing import Optional

import torch


def gaussian_kl_standard(mu: torch.Tensor, var: torch.Tensor, mask: Optional[torch.Tensor] = None,
                         reduction: str = "mean") -> torch.Tensor:
    """KL(N(mu, diag var) || N(0, I)) summed over the latent dimension.

    KL = 1/2 * sum_d (var_d + mu_d^2 - 1 - log var_d)

    Args:
        mu: ``(..., Z)`` posterior means, e.g. ``(B, T, Z)``.
        var: ``(..., Z)`` posterior variances (> 0), same shape as ``mu``.
        mask: optional bool ``(...)`` (e.g. ``(B, T)``), True on valid positions; invalid
            positions contribute nothing and are not counted in the mean.
        reduction: ``"mean"`` (over valid positions), ``"sum"`` or ``"none"`` (``(...)``, zero at
            invalid positions).
    """
    if mu.shape != var.shape:
        raise ValueError(f"mu {tuple(mu.shape)} and var {tuple(var.shape)} differ in shape")
    kl = 0.5 * (var + mu.pow(2) - 1.0 - torch.log(var)).sum(-1)       # (...)
    if mask is not None:
        if mask.shape != kl.shape:
            raise ValueError(f"mask {tuple(mask.shape)} does not match the positions {tuple(kl.shape)}")
        kl = kl.masked_fill(~mask, 0.0)
    if reduction == "none":
        return kl
    if reduction == "sum":
        return kl.sum()
    if reduction != "mean":
        raise ValueError(f"reduction must be mean, sum or none, got {reduction!r}")
    n = mask.sum() if mask is not None else torch.tensor(kl.numel(), device=kl.device)
    if int(n) == 0:
        raise ValueError("gaussian_kl_standard: no valid position (mask is all False)")
    return kl.sum() / n.to(kl.dtype)


def reparameterize(mu: torch.Tensor, var: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Sample z = mu + sqrt(var) * eps with eps ~ N(0, I), differentiable in mu and var.

    Shapes: ``mu``, ``var`` ``(..., Z)`` -> ``z`` ``(..., Z)``.
    """
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.sqrt(var) * eps
