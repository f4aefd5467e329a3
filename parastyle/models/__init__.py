"""Models, registered by name. Each model is an ``nn.Module`` with::

    Model.from_config(model_conf: dict, task: TaskInfo) -> Model
    model(batch) -> {"losses": {name: scalar tensor}, "metrics": {name: float or scalar tensor}}
    model.predict(batch) -> {factor: LongTensor (B,)}      # classification models
    model.embed(batch) -> {name: FloatTensor (B, D)}       # embedding models

The trainer sums ``losses`` (each already weighted), logs every term and every metric.
"""
from __future__ import annotations

import importlib

from parastyle.registry import Registry

MODELS = Registry("model")

_MODULES = ["multitask_ce", "parameta", "clap", "vib", "polyspeech", "vocoder", "ctc_asr", "tts", "sset", "token_decoder"]


def _import_all() -> None:
    for mod in _MODULES:
        try:
            importlib.import_module(f"parastyle.models.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"parastyle.models.{mod}":
                raise


def build_model(model_conf: dict, task):
    _import_all()
    conf = dict(model_conf)
    name = conf.pop("name")
    return MODELS.get(name).from_config(conf, task)
