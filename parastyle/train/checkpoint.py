"""Checkpoints: atomic writes with a sha256 sidecar, corruption detection, averaging, loading an exp.

A checkpoint ``checkpoints/step<NNNNNNNN>.pt`` holds only tensors, plain containers, numbers and
strings, so it loads with ``torch.load(path, weights_only=True)``. It is written to a temporary
name and renamed; then ``<name>.sha256`` is written the same way. A checkpoint is *good* when its
sidecar exists, the digest matches and ``torch.load`` succeeds; resume takes the newest good one
and names every bad one it skips.
"""
from __future__ import annotations

import hashlib
import io
import logging
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from parastyle.fileio import atomic_write

logger = logging.getLogger(__name__)

CKPT_RE = re.compile(r"^step(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or corrupt (the message names the file)."""


def checkpoint_name(step: int) -> str:
    return f"step{step:08d}.pt"


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path, state: Dict[str, Any]) -> None:
    """Serialise ``state`` atomically to ``path`` and write ``path.sha256``."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    with atomic_write(path, "wb") as f:
        f.write(data)
    with atomic_write(str(path) + ".sha256") as f:
        f.write(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")


def load_checkpoint(path, map_location="cpu", verify: bool = True) -> Dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; raises CheckpointError naming a bad file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if verify:
        side = Path(str(path) + ".sha256")
        if not side.is_file():
            if path.name == "model.pt":
                exp = path.parent
                raise CheckpointError(
                    f"{path}: no {side.name} beside it, so it cannot be verified (an interrupted or manual copy?). "
                    f"To verify it, compare `sha256sum {path}` with the digest of the file it was copied from "
                    f"and write that line to {side}; to re-create it, remove {exp}/done and {path} and rerun "
                    f"the same training command: it re-averages the kept checkpoints in {exp}/checkpoints "
                    f"without training further")
            raise CheckpointError(f"{path}: no {side.name} (the write did not complete)")
        expected = side.read_text().split()[0] if side.read_text().split() else ""
        actual = sha256_file(path)
        if actual != expected:
            raise CheckpointError(f"{path}: sha256 mismatch (file truncated or corrupt): "
                                  f"expected {expected[:12]}..., got {actual[:12]}...")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise CheckpointError(f"{path}: cannot be loaded ({type(e).__name__}: {e})") from e


def list_checkpoints(ckpt_dir) -> List[Tuple[int, Path]]:
    """``[(step, path)]`` of ``step*.pt`` files, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    out = []
    for p in ckpt_dir.iterdir():
        m = CKPT_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_good_checkpoint(ckpt_dir) -> Optional[Tuple[Path, Dict[str, Any]]]:
    """Newest checkpoint that verifies and loads, with its state; bad ones are logged by name.

    None when there is no checkpoint at all; CheckpointError (naming each file and its problem)
    when there are checkpoints but none is good: training must not silently restart at step 0.
    """
    found = list_checkpoints(ckpt_dir)
    problems = []
    for _, p in reversed(found):
        try:
            return p, load_checkpoint(p)
        except CheckpointError as e:
            problems.append(str(e))
            logger.warning("skipping bad checkpoint: %s; falling back to the previous one", e)
    if found:
        raise CheckpointError(f"{ckpt_dir}: none of the {len(found)} checkpoint(s) is usable:\n  "
                              + "\n  ".join(problems) + f"\nRemove {ckpt_dir} to train from step 0.")
    return None


def remove_checkpoint(path) -> None:
    for p in (Path(path), Path(str(path) + ".sha256")):
        p.unlink(missing_ok=True)


def average_state_dicts(paths: Sequence, key: str = "model") -> Dict[str, torch.Tensor]:
    """Element-wise mean of the ``key`` state dicts of several checkpoints (integer buffers: last one).

    Checkpoints of different architectures (other parameter names or shapes, or another recorded
    ``config_hash``) are never averaged: CheckpointError names the files and the differing keys.
    """
    if not paths:
        raise ValueError("no checkpoint to average")
    avg: Dict[str, torch.Tensor] = {}
    ref_shapes: Dict[str, tuple] = {}
    ref_hash = None
    for i, p in enumerate(paths):
        state = load_checkpoint(p)
        sd = state[key]
        shapes = {k: tuple(v.shape) for k, v in sd.items()}
        if i == 0:
            ref_shapes, ref_hash = shapes, state.get("config_hash")
        else:
            diff = sorted(k for k in set(shapes) | set(ref_shapes) if shapes.get(k) != ref_shapes.get(k))
            if diff:
                listing = ", ".join(f"{k} {ref_shapes.get(k, 'absent')} vs {shapes.get(k, 'absent')}" for k in diff[:8])
                raise CheckpointError(f"refusing to average {paths[0]} and {p}: different architectures "
                                      f"({len(diff)} parameter(s) differ: {listing})")
            h = state.get("config_hash")
            if ref_hash is not None and h is not None and h != ref_hash:
                raise CheckpointError(f"refusing to average {paths[0]} and {p}: they were trained with different "
                                      f"configs (config_hash {ref_hash[:12]}... vs {h[:12]}...)")
        for k, v in sd.items():
            if i == 0:
                avg[k] = v.clone().double() if v.is_floating_point() else v.clone()
            elif v.is_floating_point():
                avg[k] += v.double()
            else:
                avg[k] = v.clone()
    ref = load_checkpoint(paths[0])[key]
    return {k: (v / len(paths)).to(ref[k].dtype) if ref[k].is_floating_point() else v for k, v in avg.items()}


# ---------------------------------------------------------------------- RNG states
def get_rng_state() -> Dict[str, Any]:
    """Python, numpy, torch and CUDA generator states as tensors / lists (weights_only-safe)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore states captured by :func:`get_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------- loading an exp
def load_model_from_exp(exp_dir, checkpoint: Optional[str] = None, map_location="cpu"):
    """Build the model of a trained exp dir and load its weights; returns ``(model, config, task)``.

    ``checkpoint``: None -> ``model.pt`` (the averaged final weights); otherwise a file name in
    the exp dir or in ``checkpoints/``, or a path. The model is in eval mode.
    """
    import yaml

    from parastyle.models import build_model
    from parastyle.models.task import TaskInfo
    from parastyle.train.config import read_saved_config

    exp_dir = Path(exp_dir)
    config = read_saved_config(exp_dir / "config.yaml")
    with open(exp_dir / "task.yaml", encoding="utf-8") as f:
        task = TaskInfo(**yaml.safe_load(f))
    name = checkpoint or "model.pt"
    candidates = [Path(name), exp_dir / name, exp_dir / "checkpoints" / name]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise CheckpointError(f"checkpoint {name!r} not found in {exp_dir} or {exp_dir}/checkpoints "
                              f"(has training finished? look for {exp_dir}/done)")
    state = load_checkpoint(path, map_location=map_location)
    model = build_model(config["model"], task)
    model.load_state_dict(state["model"])
    model.eval()
    return model, config, task


# ---------------------------------------------------------------------- initialising from another exp
def _patterns(value, name: str) -> List["re.Pattern"]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out = []
    for v in items:
        try:
            out.append(re.compile(str(v)))
        except re.error as e:
            raise CheckpointError(f"train.{name}: bad regular expression {v!r}: {e}") from None
    return out


def init_model_from(model: torch.nn.Module, source, include=None, exclude=None) -> Dict[str, Any]:
    """Copy matching tensors of another exp's ``model.pt`` (or a checkpoint file) into ``model``.

    ``source``: an exp dir (its ``model.pt``) or a checkpoint file. ``include`` / ``exclude``: a
    regular expression or a list of them, searched in each parameter/buffer name (``include``
    None = every name). A tensor is loaded when its name is in the model with the same shape.
    Returns ``{"path", "sha256", "loaded", "filtered", "unexpected", "shape_mismatch",
    "not_initialised"}`` (lists of names; shape_mismatch as ``"name (src) vs (model)"``);
    CheckpointError when nothing is loaded.
    """
    src = Path(source)
    path = src / "model.pt" if src.is_dir() else src
    if not path.is_file():
        hint = f" ({src}/done missing: has its training finished?)" if src.is_dir() and not (src / "done").is_file() else ""
        raise CheckpointError(f"train.init_from: {path} not found{hint}")
    state = load_checkpoint(path)
    sd = state["model"] if "model" in state else state
    inc, exc = _patterns(include, "init_keys"), _patterns(exclude, "init_exclude")
    own = model.state_dict()
    report: Dict[str, Any] = {"path": str(path.resolve()), "sha256": sha256_file(path), "loaded": [], "filtered": [],
                              "unexpected": [], "shape_mismatch": []}
    take = {}
    for k, v in sd.items():
        if (inc and not any(p.search(k) for p in inc)) or any(p.search(k) for p in exc):
            report["filtered"].append(k)
        elif k not in own:
            report["unexpected"].append(k)
        elif tuple(own[k].shape) != tuple(v.shape):
            report["shape_mismatch"].append(f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}")
        else:
            take[k] = v
            report["loaded"].append(k)
    report["not_initialised"] = [k for k in own if k not in take]
    if not take:
        raise CheckpointError(
            f"train.init_from: no tensor of {path} fits the model ({len(sd)} in the file: {len(report['filtered'])} "
            f"left out by init_keys/init_exclude, {len(report['unexpected'])} not in the model, "
            f"{len(report['shape_mismatch'])} of another shape, e.g. "
            f"{(report['shape_mismatch'] or report['unexpected'] or report['filtered'])[:5]})")
    with torch.no_grad():
        for k, v in take.items():
            own[k].copy_(v.to(own[k].device, own[k].dtype))
    return report
