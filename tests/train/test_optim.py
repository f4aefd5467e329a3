"""Learning-rate schedules against values computed by hand."""
from __future__ import annotations

import math

import pytest
import torch

from parastyle.train.optim import build_optimizer, build_scheduler, lr_factor
from parastyle.train.config import ConfigError


def _lrs(conf, total, n):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], {"name": "adamw", "lr": 0.1})
    sch = build_scheduler(opt, conf, total)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    return out


def test_schedules():
    assert _lrs({"name": "constant", "warmup_steps": 0}, 10, 3) == pytest.approx([0.1, 0.1, 0.1])
    assert _lrs({"name": "constant", "warmup_steps": 4}, 10, 6) == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    cos = _lrs({"name": "warmup_cosine", "warmup_steps": 2}, 6, 7)
    # steps 2..6 -> p = 0, .25, .5, .75, 1
    assert cos == pytest.approx([0.05, 0.1, 0.1, 0.1 * 0.5 * (1 + math.cos(math.pi / 4)), 0.05,
                                 0.1 * 0.5 * (1 + math.cos(3 * math.pi / 4)), 0.0])
    lin = _lrs({"name": "warmup_linear", "warmup_steps": 0, "min_lr_ratio": 0.2}, 4, 5)
    assert lin == pytest.approx([0.1, 0.08, 0.06, 0.04, 0.02])


def test_bad_names():
    with pytest.raises(ConfigError, match="scheduler.name"):
        lr_factor(0, "cosine", 0, 10)
    with pytest.raises(ConfigError, match="optim.name"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], {"name": "sgd", "lr": 1})


def test_fused_auto_matches_a_hand_written_adamw_update():
    """optim.fused=auto picks the one-kernel update on the CPU; three steps of it equal AdamW written out."""
    torch.manual_seed(0)
    w0 = torch.randn(5, 3)
    grads = [torch.randn(5, 3) for _ in range(3)]
    p = torch.nn.Parameter(w0.clone())
    opt = build_optimizer([p], {"name": "adamw", "lr": 0.01, "weight_decay": 0.1, "betas": [0.9, 0.99], "eps": 1e-8})
    assert opt.defaults["fused"] is True
    for g in grads:
        p.grad = g.clone()
        opt.step()
    w, m, v = w0.clone().double(), torch.zeros(5, 3).double(), torch.zeros(5, 3).double()
    for t, g in enumerate(grads, start=1):
        g = g.double()
        w = w * (1 - 0.01 * 0.1)
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        w = w - 0.01 * (m / (1 - 0.9 ** t)) / ((v / (1 - 0.99 ** t)).sqrt() + 1e-8)
    torch.testing.assert_close(p.detach().double(), w, rtol=1e-5, atol=1e-6)
    off = build_optimizer([torch.nn.Parameter(w0.clone())], {"name": "adam", "lr": 0.01, "fused": False})
    assert not off.defaults.get("fused")
    with pytest.raises(ConfigError, match="fused"):
        build_optimizer([torch.nn.Parameter(w0.clone())], {"name": "adam", "lr": 0.01, "fused": "yes"})


def test_warmup_fraction_is_a_share_of_the_run():
    # 20 % of 10 steps = 2 warm-up steps: the cosine schedule of test_schedules written out by hand
    frac = _lrs({"name": "warmup_cosine", "warmup_fraction": 0.2}, 10, 4)
    assert frac == pytest.approx([0.05, 0.1, 0.1, 0.1 * 0.5 * (1 + math.cos(math.pi / 8))])
    assert _lrs({"name": "constant", "warmup_fraction": 0.5}, 4, 3) == pytest.approx([0.05, 0.1, 0.1])
    with pytest.raises(ConfigError, match="both"):
        _lrs({"name": "constant", "warmup_steps": 3, "warmup_fraction": 0.1}, 10, 1)
    with pytest.raises(ConfigError, match="warmup_fraction"):
        _lrs({"name": "constant", "warmup_fraction": 1.5}, 10, 1)
