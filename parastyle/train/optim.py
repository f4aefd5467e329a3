"""Optimizers and learning-rate schedules from config.

Schedules are multiplicative factors ``lr(step) = base_lr * f(step)`` of the optimizer step
``step = 0, 1, ...`` (the number of updates already made), with ``W = warmup_steps`` (or
``warmup_fraction * N``),
``N = total_steps`` and ``r = min_lr_ratio``:

- ``constant``:       f = min(1, (step + 1) / W) during warmup (W > 0), then 1
- ``warmup_cosine``:  warmup as above, then f = r + (1 - r) * 0.5 * (1 + cos(pi * p)),
  p = (step - W) / max(1, N - W) clipped to [0, 1]
- ``warmup_linear``:  warmup as above, then f = r + (1 - r) * (1 - p)
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable

import torch

from parastyle.train.config import ConfigError


def _use_fused(params: list, fused: Any) -> bool:
    """``optim.fused``: true / false, or "auto" (the default): the fused (one kernel for all parameters)
    Adam/AdamW update whenever every parameter is a floating-point tensor on the CPU or a GPU. It computes
    the same update as the per-parameter loop (to float rounding) and is a few per cent of a small
    model's step faster on 2 CPU cores."""
    if fused in (None, "auto"):
        tensors = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
        return bool(tensors) and all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors)
    if isinstance(fused, bool):
        return fused
    raise ConfigError(f"optim.fused must be true, false or auto, got {fused!r}")


def build_optimizer(params: Iterable, conf: Dict[str, Any]) -> torch.optim.Optimizer:
    """``conf = {"name": "adam"|"adamw", "lr", "weight_decay", "betas", "eps", "fused": auto|true|false}``."""
    name = str(conf.get("name", "adam")).lower()
    params = list(params)
    kwargs = dict(lr=float(conf["lr"]), weight_decay=float(conf.get("weight_decay", 0.0)),
                  betas=tuple(float(b) for b in conf.get("betas", (0.9, 0.999))),
                  eps=float(conf.get("eps", 1e-8)))
    if name in ("adam", "adamw") and _use_fused(params, conf.get("fused", "auto")):
        kwargs["fused"] = True
    if name == "adam":
        return torch.optim.Adam(params, **kwargs)
    if name == "adamw":
        return torch.optim.AdamW(params, **kwargs)
    raise ConfigError(f"unknown optim.name {name!r}; choose adam or adamw")


def lr_factor(step: int, name: str, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> float:
    """The schedule factor ``f(step)`` defined in the module docstring."""
    w = int(warmup_steps)
    if w > 0 and step < w:
        return (step + 1) / w
    if name == "constant":
        return 1.0
    p = min(1.0, max(0.0, (step - w) / max(1, total_steps - w)))
    r = float(min_lr_ratio)
    if name == "warmup_cosine":
        return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * p))
    if name == "warmup_linear":
        return r + (1 - r) * (1 - p)
    raise ConfigError(f"unknown scheduler.name {name!r}; choose constant, warmup_cosine or warmup_linear")


def warmup_steps_of(conf: Dict[str, Any], total_steps: int) -> int:
    """W of a scheduler conf: ``warmup_steps``, or ``warmup_fraction`` x ``total_steps`` (rounded) when
    the fraction is given instead (one warm-up for any ``--train.max_steps``); both set is an error."""
    steps = int(conf.get("warmup_steps", 0) or 0)
    frac = conf.get("warmup_fraction")
    if frac is None:
        return steps
    frac = float(frac)
    if steps:
        raise ConfigError(f"scheduler: warmup_steps={steps} and warmup_fraction={frac} are both set; give one")
    if not 0.0 <= frac < 1.0:
        raise ConfigError(f"scheduler.warmup_fraction must be in [0, 1), got {frac}")
    return int(round(frac * int(total_steps)))


def build_scheduler(optimizer: torch.optim.Optimizer, conf: Dict[str, Any], total_steps: int):
    """A ``LambdaLR`` following :func:`lr_factor`; its state_dict holds only numbers."""
    name = str(conf.get("name", "constant"))
    warmup = warmup_steps_of(conf, total_steps)
    ratio = float(conf.get("min_lr_ratio", 0.0) or 0.0)
    lr_factor(0, name, warmup, total_steps, ratio)  # validate the name now
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, name, warmup, total_steps, ratio))
