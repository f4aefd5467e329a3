"""Speech token files of a data dir, written by ``parastyle.bin.make_tokens`` and read by the speech LM.

Layout (a sub-directory, so that Kaldi's data-dir tools do not take the files for style factors)::

    <data>/<name>/utt2tokens       utt t1 t2 ...      (flat token ids, see the tokenizer)
    <data>/<name>/utt2num_tokens   utt N
    <data>/<name>/tokens.yaml      type (sset | kmeans), vocab_size, num_codebooks, codebook_size,
                                   frames_per_token, source (exp dir / k-means file), num_utts

The directory is written under a temporary name and renamed when complete: an interrupted run
leaves no ``<name>/`` that could pass for a finished one.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import yaml

from parastyle.fileio import DataError, atomic_write, c_sort_key, read_kv


def write_token_dir(data_dir, name: str, tokens: Dict[str, List[int]], info: Dict[str, Any]) -> Path:
    data_dir = Path(data_dir)
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"token dir name must be a plain name, got {name!r}")
    utts = set(read_kv(data_dir / "utt2spk"))
    missing = sorted(utts - set(tokens), key=c_sort_key)
    if missing:
        raise DataError(f"{data_dir}: {len(missing)} utterance(s) without tokens, e.g. {missing[:3]}")
    out, tmp = data_dir / name, data_dir / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    keys = sorted(tokens, key=c_sort_key)
    with atomic_write(tmp / "utt2tokens") as f:
        for u in keys:
            if not tokens[u]:
                raise DataError(f"utterance {u!r}: no token (too short for the tokenizer?)")
            f.write(f"{u} {' '.join(str(int(t)) for t in tokens[u])}\n")
    with atomic_write(tmp / "utt2num_tokens") as f:
        for u in keys:
            f.write(f"{u} {len(tokens[u])}\n")
    with atomic_write(tmp / "tokens.yaml") as f:
        yaml.safe_dump(dict(info, num_utts=len(keys)), f, sort_keys=False)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def read_token_info(data_dir, name: str) -> Dict[str, Any]:
    p = Path(data_dir) / name / "tokens.yaml"
    if not p.is_file():
        raise DataError(f"{p}: not found (write the tokens with python -m parastyle.bin.make_tokens)")
    with open(p, encoding="utf-8") as f:
        return yaml.safe_load(f)


def sset_tokens(exp_dir, data_dir, device: str = "cpu") -> Tuple[Dict[str, List[int]], Dict[str, Any]]:
    """Tokens of every utterance of ``data_dir`` (its ``feats.scp``, read as the SSET exp was trained)."""
    import torch

    from parastyle.data.collate import move_batch
    from parastyle.train.build import build_dataloader
    from parastyle.train.checkpoint import load_model_from_exp

    model, config, task = load_model_from_exp(exp_dir, map_location=device)
    if config["model"]["name"] != "sset":
        raise DataError(f"{exp_dir}: an exp of model {config['model']['name']!r}, not an SSET tokenizer ('sset')")
    loader = build_dataloader(config, data_dir, task=task, train=False)
    out: Dict[str, List[int]] = {}
    with torch.no_grad():
        for batch in loader:
            batch = move_batch(batch, device)
            codes, clen = model.codes(batch["feats"], batch["feat_lens"])
            for b, u in enumerate(batch["utt_ids"]):
                out[u] = model.tokens(codes[b, : int(clen[b])]).tolist()
    info = {"type": "sset", "vocab_size": model.vocab_size, "num_codebooks": model.num_codebooks,
            "codebook_size": model.codebook_size, "frames_per_token": model.stride,
            "source": str(Path(exp_dir).resolve())}
    return out, info


def iter_feats(data_dir):
    """``(utt, (T, D) float32)`` of ``<data_dir>/feats.scp`` in C order."""
    import kaldiio
    scp = Path(data_dir) / "feats.scp"
    if not scp.is_file():
        raise DataError(f"{scp}: not found (dump the semantic features first)")
    table = read_kv(scp)
    for u in sorted(table, key=c_sort_key):
        try:
            yield u, np.asarray(kaldiio.load_mat(table[u]), dtype=np.float32)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{scp}: utterance {u!r}: cannot read {table[u]}: {e}") from None


def kmeans_tokens(km, data_dir, source: str) -> Tuple[Dict[str, List[int]], Dict[str, Any]]:
    out = {u: km.tokens(x).tolist() for u, x in iter_feats(data_dir)}
    info = {"type": "kmeans", "vocab_size": km.vocab_size, "num_codebooks": 1, "codebook_size": km.vocab_size,
            "frames_per_token": 1, "source": str(source)}
    return out, info
