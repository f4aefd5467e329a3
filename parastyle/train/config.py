"""Training configuration: YAML file + defaults + dotted command-line overrides.

A configuration is a nested dict with the sections ``model``, ``data``, ``optim``, ``scheduler``,
``train`` and ``valid``. Every key has a default in :data:`DEFAULTS` (except ``model``, whose keys
belong to the chosen model); a YAML file overrides the defaults, then ``--a.b.c value`` arguments
override the file (values are parsed as YAML, so ``--optim.lr 1e-3`` is a float and
``--data.factors [emotion,gender]`` a list). An override of a key that exists neither in the
defaults nor in the file is an error that lists the valid keys, so a typo never passes silently.

Multi-optimizer models (those with ``train_phases``, e.g. a GAN vocoder) give ``optim`` as a
mapping phase -> optimizer conf, and ``scheduler`` either as one conf (used for every phase) or
as a mapping phase -> conf::

    optim:
      generator: {name: adamw, lr: 2.0e-4, betas: [0.8, 0.99], eps: 1.0e-9}
      discriminator: {name: adamw, lr: 2.0e-4, betas: [0.8, 0.99], eps: 1.0e-9}
    scheduler: {name: constant}

Each phase's conf gets the defaults of :data:`DEFAULTS` ``optim`` / ``scheduler``; overrides
address a phase as ``--optim.generator.lr 1e-4``.
"""
from __future__ import annotations

import copy
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from parastyle.fileio import atomic_write

DEFAULTS: Dict[str, Any] = {
    "model": {"name": "multitask_ce"},
    "data": {
        "feats": True,                 # read feats.scp; False = compute features on the fly
        "frontend": None,              # {"type": "logmel"|"fbank"|"raw", ...} for on-the-fly features
        "dataset": None,               # registered dataset (parastyle.train.build.DATASETS), null = style
        "tts": None,                   # options of data.dataset tts (parastyle.data.tts_dataset), free-form
        "lm": None,                    # options of data.dataset speech_lm (parastyle.data.lm_dataset), free-form
        "token_mel": None,             # options of data.dataset token_mel (parastyle.data.lm_dataset), free-form
        "cmvn": None,                  # null | "auto" (<train_data>/cmvn.ark) | path to a Kaldi stats file
        "factors": None,               # null = every factor with a vocabulary in lang_dir and labels in train
        "max_frames": 6000,            # frame budget of a global batch (incl. padding), null = no budget
        "batch_size": None,            # max utterances per global batch, null = no limit
        "max_frames_per_utt": None,    # random crop of training utterances, null = no crop
        "num_workers": 0,              # DataLoader worker processes (0 = load in the training process)
        "valid_max_frames": None,      # frame budget for validation/scoring, null = same as max_frames
        "augment": None,               # training augmentation {tempo, gain, noise, specaugment} (parastyle.data.augment)
        # Training batch sampler (evaluation always batches in length order, every utterance once).
        "sampler": {
            "name": "length_bucket",   # length_bucket | class_balanced
            # class_balanced (parastyle.data.balanced_sampler, ParaSpeechCLAP): each global batch holds
            # data.batch_size distinct utterances drawn with probability ~ tag frequency^-power, from
            # <train_data>/utt2tags. It applies no frame budget: data.max_frames must be null (bound
            # utterance length with data.max_frames_per_utt).
            "power": 1.0,              # 1 = inverse tag frequency, 0 = uniform
            "reduce": "mean",          # mean | max of the tag weights of a multi-tag utterance
            "num_batches": None,       # global batches per epoch, null = N_utterances // data.batch_size
            "weights": None,           # task: {task: weight} overriding the data-volume weights (parastyle.data.task_sampler)
            "untagged": "error",       # error | own_class: utterances without tags form one pseudo-tag
                                       # class <none> (their number is logged)
        },
    },
    "optim": {"name": "adam", "lr": 1.0e-3, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1.0e-8,
              "fused": "auto"},               # auto | true | false: the one-kernel Adam/AdamW update
    "scheduler": {"name": "constant", "warmup_steps": 0, "warmup_fraction": None, "min_lr_ratio": 0.0},
    "train": {
        "max_steps": 1000,             # optimizer updates; null = use max_epochs
        "max_epochs": None,
        "accum_grad": 1,
        "grad_clip": 5.0,              # max global grad norm, null = no clipping
        "amp": "none",                 # none | bf16 | fp16 (GPU only) | auto (bf16 where it is measured faster)
        "seed": 0,
        "log_interval": 20,
        "valid_interval": 200,
        "ckpt_interval": 200,
        "keep_last": 2,                # newest checkpoints kept for resume
        "average_best": 3,             # best checkpoints (by valid metric) averaged into model.pt
        "progress": "auto",            # tqdm bar: auto (only on a terminal) | true | false
        "device": "auto",              # auto | cpu | cuda
        # Intra-op CPU threads (torch.set_num_threads; inter-op threads are set to the same number
        # when torch still allows it). null = $OMP_NUM_THREADS when set, else the cores this process
        # may run on (os.sched_getaffinity) divided by the number of training processes on this node.
        "num_threads": None,
        # Checkpoint averaging (model.pt) takes the best train.average_best validated checkpoints at
        # steps >= average_min_step; null = after warm-up (the scheduler's warmup_steps, the largest
        # over phases), 0 = any step.
        "average_min_step": None,
        # Initialise the model, before training starts (never when resuming), from another exp's
        # model.pt: an exp dir or a checkpoint file. init_keys: regex (or list of regexes) of the
        # parameter names to take, null = all; init_exclude: regex (or list) of names to leave out.
        # Loaded, skipped and shape-mismatched names are logged; nothing loaded is an error.
        "init_from": None,
        "init_keys": None,
        "init_exclude": None,
    },
    "valid": {"metric": "loss", "mode": "min", "patience": None},
}

#: sections whose keys are free-form (model kwargs, frontend options): any key may be added.
OPEN_SECTIONS = ("model", "data.frontend", "data.tts", "data.augment", "data.lm", "data.token_mel",
                 "data.sampler.weights")


_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


class ConfigError(ValueError):
    """Invalid configuration or override."""


def deep_merge(base: Mapping, update: Mapping) -> Dict:
    """Recursive merge: dicts merge key by key, anything else in ``update`` replaces ``base``."""
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def flatten_keys(conf: Mapping, prefix: str = "") -> List[str]:
    """All dotted keys of a nested dict (leaves and inner nodes), e.g. ``optim``, ``optim.lr``."""
    keys = []
    for k, v in conf.items():
        key = f"{prefix}{k}"
        keys.append(key)
        if isinstance(v, Mapping):
            keys.extend(flatten_keys(v, key + "."))
    return keys


def _is_open(dotted: str) -> bool:
    return any(dotted == s or dotted.startswith(s + ".") for s in OPEN_SECTIONS)


def parse_value(text: str) -> Any:
    """Parse an override value as YAML (``1e-3`` -> 0.001, ``true`` -> True, ``[a,b]`` -> list)."""
    value = yaml.safe_load(text)
    # YAML 1.1 reads "1e-3" as a string; accept the usual float spellings.
    if isinstance(value, str) and _FLOAT_RE.match(value):
        return float(value)
    return value


def apply_override(conf: Dict, dotted: str, value: Any) -> None:
    """Set ``conf[a][b][c] = value`` for ``dotted = "a.b.c"``; unknown keys raise ConfigError."""
    parts = dotted.split(".")
    node = conf
    for i, p in enumerate(parts[:-1]):
        sub = node.get(p)
        prefix = ".".join(parts[: i + 1])
        if sub is None and _is_open(prefix + "." + parts[i + 1]):
            node[p] = sub = {}
        if not isinstance(sub, dict):
            raise ConfigError(_unknown_key_message(conf, dotted))
        node = sub
    if parts[-1] not in node and not _is_open(dotted):
        raise ConfigError(_unknown_key_message(conf, dotted))
    node[parts[-1]] = value


def _unknown_key_message(conf: Mapping, dotted: str) -> str:
    valid = "\n  ".join(sorted(flatten_keys(conf)))
    return f"unknown config key {dotted!r}; valid keys are:\n  {valid}"


def parse_overrides(args: Sequence[str]) -> List[tuple]:
    """``["--optim.lr", "1e-3", "--train.amp=bf16"]`` -> ``[("optim.lr", 0.001), ("train.amp", "bf16")]``."""
    out = []
    i = 0
    args = list(args)
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            raise ConfigError(f"expected '--key value', got {a!r}")
        key = a[2:]
        if "=" in key:
            key, text = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"override {a!r} has no value")
            text = args[i + 1]
            i += 2
        out.append((key, parse_value(text)))
    return out


#: sections that may be a mapping phase -> conf for multi-optimizer models
PHASED_SECTIONS = ("optim", "scheduler")


def is_phased(section: Any, name: str = "optim") -> bool:
    """True when an ``optim``/``scheduler`` section is a mapping phase -> conf.

    A section mixing phase mappings with plain keys (``{lr: 1e-3, generator: {...}}``) is an error.
    """
    if not isinstance(section, Mapping):
        return False
    nested = [k for k, v in section.items() if isinstance(v, Mapping)]
    if not nested:
        return False
    plain = [k for k, v in section.items() if not isinstance(v, Mapping)]
    if plain:
        raise ConfigError(f"{name} mixes per-phase confs ({', '.join(map(str, nested))}) with plain keys "
                          f"({', '.join(map(str, plain))}): give either one conf or a mapping phase -> conf")
    return True


def _expand_phased(conf: Dict[str, Any]) -> None:
    """Fill every phase conf of a phased ``optim``/``scheduler`` with the section's defaults."""
    for sec in PHASED_SECTIONS:
        if is_phased(conf.get(sec), sec):
            conf[sec] = {p: deep_merge(DEFAULTS[sec], v) for p, v in conf[sec].items()}


def validate_config(conf: Mapping) -> None:
    """Reject keys that are not in :data:`DEFAULTS` (outside the open sections) and bad enum values."""
    allowed = set(flatten_keys(DEFAULTS))
    for sec in PHASED_SECTIONS:
        is_phased(conf.get(sec), sec)
    for key in flatten_keys(conf):
        if _is_open(key) or key in allowed:
            continue
        parts = key.split(".")
        if parts[0] in PHASED_SECTIONS and is_phased(conf[parts[0]], parts[0]) and (
                len(parts) == 2 or ".".join([parts[0]] + parts[2:]) in allowed):
            continue  # optim.<phase>, optim.<phase>.<key>
        raise ConfigError(f"unknown config key {key!r}; valid keys are:\n  " + "\n  ".join(sorted(allowed)))
    if "name" not in conf.get("model", {}):
        raise ConfigError("model.name is required")
    if conf["train"]["amp"] not in ("none", "bf16", "fp16", "auto", None, False):
        raise ConfigError(f"train.amp must be none, bf16, fp16 or auto, got {conf['train']['amp']!r}")
    if conf["valid"]["mode"] not in ("min", "max"):
        raise ConfigError(f"valid.mode must be min or max, got {conf['valid']['mode']!r}")
    if conf["train"]["max_steps"] is None and conf["train"]["max_epochs"] is None:
        raise ConfigError("set train.max_steps or train.max_epochs")
    if int(conf["train"]["accum_grad"]) < 1:
        raise ConfigError("train.accum_grad must be >= 1")
    _validate_sampler(conf["data"].get("sampler") or {})


SAMPLERS = ("length_bucket", "class_balanced", "task")


def _validate_sampler(sc: Mapping) -> None:
    """Enum and range checks of ``data.sampler`` (key names are checked against :data:`DEFAULTS`)."""
    name = sc.get("name", "length_bucket")
    if name not in SAMPLERS:
        raise ConfigError(f"data.sampler.name must be one of {list(SAMPLERS)}, got {name!r}")
    if sc.get("reduce", "mean") not in ("mean", "max"):
        raise ConfigError(f"data.sampler.reduce must be mean or max, got {sc.get('reduce')!r}")
    if sc.get("untagged", "error") not in ("error", "own_class"):
        raise ConfigError(f"data.sampler.untagged must be error or own_class, got {sc.get('untagged')!r}")
    power = sc.get("power", 1.0)
    if isinstance(power, bool) or not isinstance(power, (int, float)) or power < 0:
        raise ConfigError(f"data.sampler.power must be a number >= 0, got {power!r}")
    nb = sc.get("num_batches")
    if nb is not None and (isinstance(nb, bool) or not isinstance(nb, int) or nb < 1):
        raise ConfigError(f"data.sampler.num_batches must be null or an integer >= 1, got {nb!r}")
    weights = sc.get("weights")
    if weights is not None:
        bad = (not isinstance(weights, Mapping) or not weights
               or any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in weights.values()))
        if bad:
            raise ConfigError(f"data.sampler.weights must be null or a mapping task -> weight >= 0 "
                              f"(e.g. {{asr: 2, lid: 1}}), got {weights!r}")


def load_config(path: Optional[str] = None, overrides: Sequence = ()) -> Dict[str, Any]:
    """Defaults <- YAML file <- overrides (``[(dotted, value)]`` or raw ``["--k", "v"]`` args); validated."""
    conf = copy.deepcopy(DEFAULTS)
    if path is not None:
        with open(path, encoding="utf-8") as f:
            file_conf = yaml.safe_load(f) or {}
        if not isinstance(file_conf, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        if "model" in file_conf:  # model kwargs come only from the file, not the placeholder default
            conf["model"] = {}
        for sec in PHASED_SECTIONS:  # a per-phase section replaces the single-optimizer default
            if is_phased(file_conf.get(sec), f"{path}: {sec}"):
                conf[sec] = {}
        conf = deep_merge(conf, file_conf)
        _expand_phased(conf)
        # model.name may still come from an override
        validate_config(dict(conf, model=dict({"name": None}, **conf["model"])))
    if overrides and isinstance(overrides[0], str):
        overrides = parse_overrides(overrides)
    for key, value in overrides:
        apply_override(conf, key, value)
    _expand_phased(conf)
    validate_config(conf)
    return conf


def git_commit(repo_dir: Optional[str] = None) -> str:
    """Current commit hash (with ``-dirty`` when the tree has changes), or ``unknown``."""
    repo_dir = repo_dir or str(Path(__file__).resolve().parents[2])
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo_dir,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_info(device: str) -> Dict[str, Any]:
    """Git commit, versions of the main packages, python, platform and the training device."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "torchaudio", "numpy", "kaldiio", "parastyle", "transformers"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    info = {"git_commit": git_commit(), "versions": versions, "python": platform.python_version(),
            "platform": platform.platform(), "device": device}
    try:
        import torch
        if device.startswith("cuda") and torch.cuda.is_available():
            info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    except Exception:  # noqa: BLE001 - device naming is informative only
        pass
    return info


def save_config(path, conf: Mapping, extra: Optional[Mapping] = None) -> None:
    """Write the resolved config (plus ``extra`` such as environment info under ``_run``) atomically."""
    out = dict(conf)
    if extra:
        out["_run"] = dict(extra)
    with atomic_write(path) as f:
        yaml.safe_dump(out, f, sort_keys=False, default_flow_style=None)


def read_saved_config(path) -> Dict[str, Any]:
    """Read an exp dir's ``config.yaml``; the ``_run`` block is returned under the same key."""
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


#: keys that may change when an exp is resumed (or found finished): they affect neither the model,
#: nor the data it sees, nor the optimisation path of the steps already made. Any other change of
#: the resolved config (model.*, data front-end/batching, optim, scheduler, seed, ...) is refused.
RESUME_COMPATIBLE_KEYS = (
    "train.max_steps", "train.max_epochs", "train.log_interval", "train.valid_interval", "train.ckpt_interval",
    "train.keep_last", "train.average_best", "train.average_min_step", "train.progress", "train.device",
    "train.num_threads", "data.num_workers", "data.valid_max_frames", "valid.patience",
    # only read when training starts from scratch
    "train.init_from", "train.init_keys", "train.init_exclude",
)


def _leaves(conf: Any, prefix: str = "") -> Dict[str, Any]:
    """``{dotted key: value}`` of every leaf (an empty mapping is a leaf)."""
    if isinstance(conf, Mapping) and conf:
        out: Dict[str, Any] = {}
        for k, v in conf.items():
            out.update(_leaves(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: conf}


def _normalise(conf: Mapping) -> Dict[str, Any]:
    """The config as it reads back from config.yaml (tuples -> lists, ...), without ``_run``."""
    return yaml.safe_load(yaml.safe_dump({k: v for k, v in conf.items() if k != "_run"}))


def _compatible(key: str) -> bool:
    return any(key == c or key.startswith(c + ".") for c in RESUME_COMPATIBLE_KEYS)


def config_differences(saved: Mapping, current: Mapping) -> tuple:
    """``(incompatible, compatible)``: lists of ``(dotted key, saved value, current value)`` (a key
    absent on one side has the value ``<unset>``); ``_run`` is ignored. A key missing from the saved
    config (one added to :data:`DEFAULTS` since) that now holds its default is compatible."""
    a, b = _leaves(_normalise(saved)), _leaves(_normalise(current))
    defaults = _leaves(_normalise(DEFAULTS))
    incompatible, compatible = [], []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<unset>"), b.get(key, "<unset>")
        if va != vb:
            new_default = key not in a and key in defaults and vb == defaults[key]
            (compatible if _compatible(key) or new_default else incompatible).append((key, va, vb))
    return incompatible, compatible


def _sorted_mappings(value: Any) -> Any:
    """``value`` with every mapping rebuilt in sorted key order (recursively, through lists)."""
    if isinstance(value, Mapping):
        return {k: _sorted_mappings(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [_sorted_mappings(v) for v in value]
    return value


def config_hash(conf: Mapping) -> str:
    """sha256 of the config without ``_run``, without :data:`RESUME_COMPATIBLE_KEYS` and without keys at
    their :data:`DEFAULTS` value (so that a key added to the defaults later keeps the hash): equal for
    two configs that train the same model the same way."""
    import hashlib
    defaults = _leaves(_normalise(DEFAULTS))
    leaves = {k: v for k, v in _leaves(_normalise(conf)).items()
              if not _compatible(k) and (k.startswith("model.") or not (k in defaults and defaults[k] == v))}
    # Keys sorted here, not only by sort_keys: a package that patches PyYAML's dict representer (oyaml,
    # imported by opensmile's dependencies) makes safe_dump keep insertion order whatever sort_keys says.
    text = yaml.safe_dump(_sorted_mappings(leaves), sort_keys=True, default_flow_style=None)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
