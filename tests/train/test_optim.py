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
