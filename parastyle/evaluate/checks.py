"""Checks every evaluation runs before it trusts a number: front-end identity, finiteness, labels.

* :func:`check_frontend` — the test data must be read by the front-end the exp was trained on.
  For an exp trained on pre-extracted features (``data.feats: true``) the training front-end is
  the training data dir's ``feats_conf.yaml`` (``config["_run"]["train_data"]``), and the exp's
  ``task.yaml`` records the feature dim and the frame shift; the test dir's ``feats_conf.yaml``,
  ``frame_shift`` and the dim of its first feature matrix must agree with them. Features of
  another front-end with the same dimension (e.g. log-mel vs fbank, 80 bins each) otherwise score
  a number that means nothing. For an exp computing features on the fly (``data.feats: false``)
  the config's ``data.frontend`` is used for every data dir, so there is nothing to compare.
* :func:`check_finite` — a non-finite feature or embedding stops the evaluation with the utterance id.
* :func:`check_labels_present` — an evaluation factor whose file is present but empty is an error.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import torch

from parastyle.fileio import DataError

logger = logging.getLogger(__name__)

# Keys of a front-end config that do not change the features it computes.
_IRRELEVANT_KEYS = frozenset()


def _read_yaml(path: Path) -> Dict[str, Any]:
    import yaml
    try:
        with open(path, encoding="utf-8") as f:
            conf = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DataError(f"{path}: cannot read the front-end description ({e})") from None
    if not isinstance(conf, dict) or "type" not in conf:
        raise DataError(f"{path}: expected a front-end description (a mapping with 'type'), got {conf!r}")
    return conf


def canonical_frontend(conf: Mapping[str, Any], where: str = "front-end") -> Dict[str, Any]:
    """The front-end config with every default explicit (``build_frontend(conf).to_config()``)."""
    from parastyle.features.frontend import build_frontend
    try:
        return dict(build_frontend(dict(conf)).to_config())
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{where}: not a valid front-end description {dict(conf)} ({e})") from None


def _diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> Dict[str, tuple]:
    out = {}
    for k in sorted(set(a) | set(b)):
        if k in _IRRELEVANT_KEYS:
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, float) or isinstance(vb, float):
            try:
                if va is not None and vb is not None and math.isclose(float(va), float(vb), rel_tol=1e-9):
                    continue
            except (TypeError, ValueError):
                pass
        if va != vb:
            out[k] = (va, vb)
    return out


def _check_unchanged_since_training(path: Path, exp_dir) -> None:
    """``path`` (the training dir's feats_conf.yaml) must be the file the exp recorded at training
    (``<exp>/identity.yaml``, sha256), else the training front-end is not known any more."""
    if exp_dir is None:
        return
    try:
        from parastyle.train.identity import read_identity
        ident = read_identity(exp_dir)
    except (ImportError, DataError):
        return
    files = ((ident or {}).get("train_data") or {}).get("files") or {}
    if "feats_conf.yaml" not in files:
        return
    import hashlib
    have = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    if have != files["feats_conf.yaml"]:
        raise DataError(f"{path}: {'changed' if have else 'removed'} since {exp_dir} was trained ("
                        f"{Path(exp_dir) / 'identity.yaml'} records sha256 {files['feats_conf.yaml']}): the training "
                        f"data was re-extracted, so the front-end the exp was trained on is not known; restore "
                        f"the training features or retrain")


def training_frontend(config: Mapping[str, Any], exp_dir=None) -> tuple:
    """``(front-end config or None, where it was looked for)`` of the exp's training features.

    The training data dir's ``feats_conf.yaml`` (``config["_run"]["train_data"]``) first, checked
    against the sha256 ``<exp_dir>/identity.yaml`` recorded at training when given; else the
    config's ``data.frontend`` when it is a front-end :func:`build_frontend` knows."""
    data = config.get("data") or {}
    train = (config.get("_run") or {}).get("train_data")
    where = f"{Path(train) / 'feats_conf.yaml'}" if train else "the exp config (no _run.train_data)"
    if train and data.get("feats"):
        _check_unchanged_since_training(Path(train) / "feats_conf.yaml", exp_dir)
    if train and (Path(train) / "feats_conf.yaml").is_file():
        return _read_yaml(Path(train) / "feats_conf.yaml"), where
    fe = data.get("frontend")
    if isinstance(fe, dict) and fe.get("type"):
        from parastyle.features.frontend import FRONTENDS
        try:
            FRONTENDS.get(fe["type"])
        except (KeyError, ValueError):
            return None, where
        return dict(fe), "the exp config's data.frontend"
    return None, where


def check_frontend(config: Mapping[str, Any], task, data_dir, first_feats: Optional[torch.Tensor] = None,
                   exp_dir=None) -> None:
    """Refuse ``data_dir`` when its features do not come from the exp's training front-end.

    ``config``: the exp's saved config; ``task``: its :class:`TaskInfo`; ``first_feats``: an optional
    ``(T, D)`` feature matrix read from ``data_dir`` (its dim is compared with ``task.feat_dim``);
    ``exp_dir``: the exp, whose ``identity.yaml`` proves the training dir's ``feats_conf.yaml`` unchanged.
    Raises :class:`DataError` naming both sides of the mismatch.
    """
    d = Path(data_dir)
    dc = config.get("data") or {}
    if not dc.get("feats"):
        return                                  # features are computed by data.frontend for every dir
    from parastyle.data.datadir import read_frame_shift
    test_conf_path = d / "feats_conf.yaml"
    train_conf, train_where = training_frontend(config, exp_dir)
    if test_conf_path.is_file():
        test_conf = canonical_frontend(_read_yaml(test_conf_path), str(test_conf_path))
        if train_conf is not None:
            ref = canonical_frontend(train_conf, train_where)
            diff = _diff(ref, test_conf)
            if "type" in diff:          # another kind of front-end: its parameters are not comparable
                diff = {"type": diff["type"]}
            if diff:
                listing = ", ".join(f"{k}: {a!r} (training) vs {b!r} (test)" for k, (a, b) in diff.items())
                raise DataError(f"{test_conf_path}: the features of {d} come from another front-end than the "
                                f"exp was trained on ({train_where}): {listing}; re-extract {d} with the "
                                f"training front-end")
        elif train_where:
            logger.warning("the training front-end is not recorded (%s not found); comparing %s only by "
                           "feature dim and frame shift", train_where, test_conf_path)
    elif train_conf is not None:
        raise DataError(f"{d}: no feats_conf.yaml, so the front-end of its features is unknown; the exp was "
                        f"trained on {train_conf.get('type')} features ({train_where}); extract {d} with "
                        f"parastyle.bin.extract_feats (which records feats_conf.yaml)")
    shift = read_frame_shift(d)
    ref_shift = getattr(task, "frame_shift_s", None)
    if shift is not None and ref_shift is not None and not math.isclose(float(shift), float(ref_shift),
                                                                         rel_tol=1e-6):
        raise DataError(f"{d}/frame_shift: {shift} s, but the exp was trained with a frame shift of "
                        f"{ref_shift} s (task.yaml)")
    if first_feats is not None:
        dim = int(first_feats.shape[-1])
        if dim != int(task.feat_dim):
            raise DataError(f"{d}/feats.scp: features have dimension {dim}, the exp was trained on "
                            f"dimension {task.feat_dim} (task.yaml)")


def check_finite(x: torch.Tensor, utt_ids: Sequence[str], what: str, where: str = "") -> None:
    """Raise :class:`DataError` naming the first utterance whose row of ``x (B, ...)`` is not finite."""
    if x.dtype.is_floating_point and not bool(torch.isfinite(x).all()):
        bad = (~torch.isfinite(x.detach().reshape(x.shape[0], -1))).any(-1).nonzero().flatten().tolist()
        names = [utt_ids[i] for i in bad]
        more = f"; {len(names)} such utterance(s) in this batch: {names[:5]}" if len(names) > 1 else ""
        raise DataError(f"{where + ': ' if where else ''}{what} of utterance {names[0]!r} is not finite "
                        f"(NaN or inf){more}")


def check_batch_finite(batch: Mapping[str, Any], where: str = "") -> None:
    """Non-finite input features of a batch, with their utterance id (padding is zero, so finite)."""
    feats = batch.get("feats")
    if torch.is_tensor(feats):
        check_finite(feats, batch["utt_ids"], "the input features", where)


def check_labels_present(data_dir, factors: Sequence[str]) -> None:
    """A ``utt2<factor>`` file that exists but has no line is an error, not "every label unknown"."""
    d = Path(data_dir)
    for f in factors:
        p = d / f"utt2{f}"
        if p.is_file() and not p.read_bytes().strip():
            raise DataError(f"{p}: the file is empty: no utterance of {d} has a {f} label (remove the file if "
                            f"the labels are unknown, or regenerate it)")


def check_model_finite(model: torch.nn.Module, where: str) -> None:
    """A checkpoint whose weights hold NaN/inf cannot score anything: name the first such tensor."""
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.dtype.is_floating_point and not bool(torch.isfinite(t).all()):
            raise DataError(f"{where}: model tensor {name!r} holds non-finite values (NaN or inf); "
                            f"the checkpoint is unusable (score another checkpoint)")
