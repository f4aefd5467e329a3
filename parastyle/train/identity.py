"""Exp identity: what an exp dir was trained on, recorded in ``<exp>/identity.yaml``.

The trainer writes it when training starts and checks it when an exp is resumed or found
finished, so that a model trained on one fold is never silently reused for another. Scoring code
can check a test set against the training data the same way (:func:`check_exp_identity`).

Recorded::

    config_hash: sha256 of the resolved config without the resume-compatible keys
                 (parastyle.train.config.RESUME_COMPATIBLE_KEYS) and without _run
    train_data / valid_data:
      path:      the resolved data dir (informative: a moved data dir with the same content is accepted)
      num_utts:  utterances in utt2spk
      utts:      sha256 of the sorted utt2spk keys, one per line
      files:     {feats.scp, feats_conf.yaml, utt2<factor> of every factor in lang_dir: sha256 or null}
    lang_dir:
      path
      vocabularies: {<factor>.txt (every *.txt of lang_dir): sha256}
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import yaml

from parastyle.fileio import DataError, atomic_write, c_sort_key, read_kv

logger = logging.getLogger(__name__)

IDENTITY_FILE = "identity.yaml"
_UNSET = object()


class IdentityError(DataError):
    """An exp dir was trained on something else than what it is used with (the message names the difference)."""


def _sha256_file(path: Path) -> Optional[str]:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_identity(data_dir, lang_dir=None) -> Dict[str, Any]:
    """Identity of a Kaldi data dir (see the module docstring)."""
    d = Path(data_dir)
    utts = sorted(read_kv(d / "utt2spk"), key=c_sort_key)
    files: Dict[str, Optional[str]] = {name: _sha256_file(d / name) for name in ("feats.scp", "feats_conf.yaml")}
    if lang_dir is not None:
        for vocab in sorted(Path(lang_dir).glob("*.txt")):
            label_file = d / f"utt2{vocab.stem}"
            if label_file.is_file():
                files[label_file.name] = _sha256_file(label_file)
    return {"path": str(d.resolve()), "num_utts": len(utts),
            "utts": hashlib.sha256("".join(u + "\n" for u in utts).encode("utf-8")).hexdigest(), "files": files}


def lang_identity(lang_dir) -> Dict[str, Any]:
    d = Path(lang_dir)
    return {"path": str(d.resolve()), "vocabularies": {p.name: _sha256_file(p) for p in sorted(d.glob("*.txt"))}}


def exp_identity(config: Optional[Mapping] = None, train_data=None, valid_data=_UNSET, lang_dir=None) -> Dict[str, Any]:
    """The identity record of the given parts (a part left out is not in the record)."""
    out: Dict[str, Any] = {}
    if config is not None:
        from parastyle.train.config import config_hash
        out["config_hash"] = config_hash(config)
    if train_data is not None:
        out["train_data"] = data_identity(train_data, lang_dir)
    if valid_data is not _UNSET:
        out["valid_data"] = data_identity(valid_data, lang_dir) if valid_data is not None else None
    if lang_dir is not None:
        out["lang_dir"] = lang_identity(lang_dir)
    return out


def read_identity(exp_dir) -> Optional[Dict[str, Any]]:
    p = Path(exp_dir) / IDENTITY_FILE
    if not p.is_file():
        return None
    with open(p, encoding="utf-8") as f:
        return yaml.safe_load(f)


def write_identity(exp_dir, identity: Mapping) -> None:
    with atomic_write(Path(exp_dir) / IDENTITY_FILE) as f:
        yaml.safe_dump(dict(identity), f, sort_keys=False)


def identity_differences(recorded: Mapping, current: Mapping) -> List[str]:
    """Human-readable differences of the parts present in ``current`` (paths alone are not a difference)."""
    diffs: List[str] = []
    for part, now in current.items():
        if part not in recorded:
            continue
        then = recorded[part]
        if part == "config_hash":
            if then != now:
                diffs.append(f"config_hash: trained with {str(then)[:12]}..., now {str(now)[:12]}...")
            continue
        if then is None or now is None:
            if then is not now:
                diffs.append(f"{part}: trained with {then['path'] if then else None}, now {now['path'] if now else None}")
            continue
        where = f"{part} (trained on {then.get('path')}, now {now.get('path')})"
        if part == "lang_dir":
            a, b = then.get("vocabularies", {}), now.get("vocabularies", {})
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    diffs.append(f"{where}: vocabulary {name} " + ("differs" if name in a and name in b else
                                                                   "added" if name in b else "removed"))
            continue
        if then.get("utts") != now.get("utts"):
            diffs.append(f"{where}: utterance list differs ({then.get('num_utts')} utterances then, "
                         f"{now.get('num_utts')} now, or other utterance ids)")
        a, b = then.get("files", {}), now.get("files", {})
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                diffs.append(f"{where}: {name} differs" if a.get(name) and b.get(name) else
                             f"{where}: {name} {'present' if a.get(name) else 'absent'} then, "
                             f"{'present' if b.get(name) else 'absent'} now")
    return diffs


def check_exp_identity(exp_dir, config: Optional[Mapping] = None, train_data=None, valid_data=_UNSET,
                       lang_dir=None, required: bool = False) -> Optional[Dict[str, Any]]:
    """Compare what ``exp_dir`` was trained on with the given parts; raise IdentityError naming every
    difference. Returns the current identity record (None when the exp has no identity.yaml and
    ``required`` is false; with ``required`` a missing record is an error)."""
    exp_dir = Path(exp_dir)
    recorded = read_identity(exp_dir)
    current = exp_identity(config, train_data, valid_data, lang_dir)
    if recorded is None:
        if required:
            raise IdentityError(f"{exp_dir}/{IDENTITY_FILE}: not found; cannot tell what {exp_dir} was trained on")
        return None
    diffs = identity_differences(recorded, current)
    if diffs:
        raise IdentityError(f"{exp_dir} was trained on something else ({exp_dir}/{IDENTITY_FILE}):\n  "
                            + "\n  ".join(diffs) + f"\nUse another exp dir (e.g. one per fold), or remove {exp_dir} "
                            f"to train it again.")
    for part in ("train_data", "valid_data", "lang_dir"):
        then, now = recorded.get(part), current.get(part)
        if then and now and then.get("path") != now.get("path"):
            logger.warning("%s: %s moved from %s to %s (same content)", exp_dir, part, then["path"], now["path"])
    return current
