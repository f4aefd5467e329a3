"""Every training config shipped in a recipe loads (known keys, valid values) and its speech encoder
builds with the arguments the config gives: a config left behind by a change of an encoder's signature
fails here instead of at a user's stage 4."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from parastyle.nn.encoders import build_encoder
from parastyle.train.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in ROOT.glob("egs/*/*/conf/*.yaml")
                 if "model" in (yaml.safe_load(p.read_text(encoding="utf-8")) or {}))


def test_recipes_ship_training_configs():
    assert len(CONFIGS) > 40, "recipe configs not found"


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(ROOT)) for p in CONFIGS])
def test_config_loads_and_its_encoder_builds(path):
    conf = load_config(str(path))
    enc = conf["model"].get("encoder")
    if not isinstance(enc, dict) or "name" not in enc:
        return
    if enc.get("path") or enc["name"] == "ssl":          # pretrained weights from a local path: not here
        return
    dim = int(conf["model"].get("input_dim", 80))
    module = build_encoder(enc, input_dim=dim)
    assert module.output_dim > 0
