import math

import pytest
import torch

from parastyle.losses.vib import gaussian_kl_standard, reparameterize


def _kl_loop(mu, var, mask):
    """Reference: per valid frame, per dimension, KL of two univariate Gaussians (textbook form)."""
    total, n = 0.0, 0
    B, T, Z = mu.shape
    for b in range(B):
        for t in range(T):
            if not mask[b, t]:
                continue
            n += 1
            for d in range(Z):
                m, s2 = float(mu[b, t, d]), float(var[b, t, d])
                # KL(N(m, s2) || N(0, 1)) = log(1/s) + (s2 + m^2)/2 - 1/2
                total += math.log(1.0 / math.sqrt(s2)) + (s2 + m * m) / 2 - 0.5
    return total / n


def test_kl_matches_loop_with_mask():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    var = torch.rand(3, 5, 4, generator=g, dtype=torch.float64) * 2 + 0.1
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    got = gaussian_kl_standard(mu, var, mask)
    assert got.item() == pytest.approx(_kl_loop(mu, var, mask), rel=1e-10)
    # padded positions do not matter
    mu2, var2 = mu.clone(), var.clone()
    mu2[~mask] = 100.0
    var2[~mask] = 50.0
    assert gaussian_kl_standard(mu2, var2, mask).item() == pytest.approx(got.item(), rel=1e-12)
    none = gaussian_kl_standard(mu, var, mask, reduction="none")
    assert none.shape == (3, 5) and (none[~mask] == 0).all()
    assert gaussian_kl_standard(mu, var, mask, reduction="sum").item() == pytest.approx(none.sum().item())


def test_kl_zero_at_prior_and_monte_carlo():
    assert gaussian_kl_standard(torch.zeros(2, 3), torch.ones(2, 3)).item() == pytest.approx(0.0, abs=1e-7)
    g = torch.Generator().manual_seed(1)
    mu = torch.tensor([[0.7, -1.2]], dtype=torch.float64)
    var = torch.tensor([[0.5, 1.8]], dtype=torch.float64)
    z = reparameterize(mu.expand(200000, 2), var.expand(200000, 2), generator=g)
    logq = (-0.5 * ((z - mu) ** 2 / var + torch.log(2 * math.pi * var))).sum(-1)
    logp = (-0.5 * (z ** 2 + math.log(2 * math.pi))).sum(-1)
    mc = (logq - logp).mean().item()
    assert mc == pytest.approx(gaussian_kl_standard(mu, var).item(), abs=0.02)


def test_reparameterize_moments_and_gradient():
    g = torch.Generator().manual_seed(2)
    mu = torch.full((100000, 1), 2.0, requires_grad=True)
    var = torch.full((100000, 1), 0.25, requires_grad=True)
    z = reparameterize(mu, var, generator=g)
    assert z.mean().item() == pytest.approx(2.0, abs=0.01)
    assert z.var().item() == pytest.approx(0.25, abs=0.01)
    z.sum().backward()
    # dz/dmu = 1 and dz/dvar = eps / (2 sqrt(var)) = (z - mu) / (2 var), per element
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
    torch.testing.assert_close(var.grad, (z.detach() - 2.0) / (2 * 0.25), atol=1e-5, rtol=1e-5)


def test_kl_errors():
    with pytest.raises(ValueError):
        gaussian_kl_standard(torch.zeros(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="no valid"):
        gaussian_kl_standard(torch.zeros(1, 2, 3), torch.ones(1, 2, 3), torch.zeros(1, 2, dtype=torch.bool))
