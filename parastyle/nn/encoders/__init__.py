"""Utterance encoders, registered by name.

Every encoder maps padded features to one embedding per utterance::

    enc = build_encoder({"name": "lstm", ...}, input_dim=80)
    emb = enc(x, mask)          # x: (B, T, D) float, mask: (B, T) bool (True = valid) -> (B, enc.output_dim)
    frames, fmask = enc.forward_frames(x, mask)   # optional: (B, T', H), (B, T') before pooling

Padded frames must never change an embedding.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict

from parastyle.registry import Registry

ENCODERS = Registry("encoder")

# Modules that register encoders; imported lazily so a missing optional part fails only when used.
_MODULES = ["simple", "cnn", "lstm", "qformer", "transformer", "cnn1d", "bilstm", "qformer_small", "transformer_wide", "ssl"]


def _import_all() -> None:
    for mod in _MODULES:
        try:
            importlib.import_module(f"parastyle.nn.encoders.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"parastyle.nn.encoders.{mod}":
                raise


def build_encoder(conf: Dict[str, Any], input_dim: int):
    """Build an encoder from ``{"name": <registered name>, **kwargs}``."""
    _import_all()
    conf = dict(conf)
    name = conf.pop("name")
    return ENCODERS.get(name)(input_dim=input_dim, **conf)
