"""Best-of-N selection: rank N candidate waveforms (e.g. TTS outputs) by their match to a style prompt.

    python -m parastyle.bin.best_of_n --exp exp/clap --prompt "A person is speaking in a happy style." \\
        --candidates <dir of .wav | wav.scp> --out ranking.txt [--feats_conf data/train/feats_conf.yaml] \\
        [--checkpoint model.pt] [--device cpu]

Each candidate is embedded by the speech tower, the prompt by the text tower, and candidates
are sorted by cosine similarity (ties by name); the first is the one to keep. The output file
has one line per candidate, ``<rank> <candidate id> <cosine>`` (rank 1 = best), written
atomically. Candidate ids are the file names without ``.wav`` (directory) or the wav.scp keys.

Models: a CLAP exp (``embed_text`` returns one tensor) or a ParaMETA exp (``embed_text`` returns
a dict of subspaces: the L2-normalised subspaces shared by speech and text are concatenated, so the
cosine is the mean of the per-subspace cosines; :func:`parastyle.models.clap.joint_embeddings`).

Features are computed on the fly. An exp trained on pre-extracted features (``data.feats: true``)
uses the frontend of ``<train data>/feats_conf.yaml`` (or ``--feats_conf``) and its CMVN.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

import torch
import yaml

from parastyle.data.collate import move_batch
from parastyle.fileio import DataError, atomic_write, read_kv, write_kv
from parastyle.models.clap import joint_cosine, joint_embeddings
from parastyle.train.build import build_dataloader
from parastyle.train.checkpoint import CheckpointError, load_model_from_exp

logger = logging.getLogger("best_of_n")


def read_candidates(candidates) -> dict:
    """``{id: wav path or wav.scp entry}`` from a directory of ``.wav`` files or a wav.scp file."""
    p = Path(candidates)
    if p.is_dir():
        wavs = sorted(p.glob("*.wav"))
        if not wavs:
            raise DataError(f"{p}: no .wav file")
        out = {}
        for w in wavs:
            key = w.stem
            if any(c.isspace() for c in key):
                raise DataError(f"{w}: file name contains whitespace (cannot be a Kaldi key)")
            out[key] = str(w.resolve())
        return out
    if p.is_file():
        table = read_kv(p)
        if not table:
            raise DataError(f"{p}: no candidate")
        return table
    raise DataError(f"{p}: not a directory of .wav files nor a wav.scp file")


def _on_the_fly_config(config: dict, feats_conf: Optional[str]) -> dict:
    config = dict(config)
    data = dict(config["data"])
    if data.get("feats"):
        path = Path(feats_conf) if feats_conf else None
        if path is None:
            train = (config.get("_run") or {}).get("train_data")
            path = Path(train) / "feats_conf.yaml" if train else None
        if path is None or not path.is_file():
            raise DataError(f"the exp was trained on pre-extracted features; give --feats_conf "
                            f"(the training data dir's feats_conf.yaml){f', {path} not found' if path else ''}")
        with open(path, encoding="utf-8") as f:
            data["frontend"] = yaml.safe_load(f)
        data["feats"] = False
    config["data"] = data
    return config


def rank_candidates(exp, prompt: str, candidates, checkpoint=None, feats_conf=None,
                    device="cpu") -> List[Tuple[str, float]]:
    """``[(candidate id, cosine)]`` sorted best first."""
    if not prompt.strip():
        raise ValueError("empty --prompt")
    model, config, task = load_model_from_exp(exp, checkpoint, map_location=device)
    model.to(device).eval()
    config = _on_the_fly_config(config, feats_conf)
    table = read_candidates(candidates)
    with tempfile.TemporaryDirectory(prefix="best_of_n.") as tmp:
        write_kv(Path(tmp) / "wav.scp", table)
        write_kv(Path(tmp) / "utt2spk", {k: k for k in table})
        loader = build_dataloader(config, tmp, task=task, train=False)
        ids, embs = [], []
        for batch in loader:
            batch = move_batch(batch, device)
            embs.append(joint_embeddings(model, batch=batch)["speech"].cpu())
            ids.extend(batch["utt_ids"])
    text = joint_embeddings(model, texts=[prompt])["text"].cpu()
    cos = joint_cosine(torch.cat(embs), text)[:, 0].tolist()
    return sorted(zip(ids, cos), key=lambda t: (-t[1], t[0]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exp", required=True)
    ap.add_argument("--prompt", required=True, help="style prompt (caption)")
    ap.add_argument("--candidates", required=True, help="directory of .wav files or a wav.scp")
    ap.add_argument("--out", required=True, help="ranking file: '<rank> <id> <cosine>' per line")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--feats_conf", default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        ranking = rank_candidates(args.exp, args.prompt, args.candidates, args.checkpoint, args.feats_conf, device)
    except (DataError, CheckpointError, ValueError) as e:
        logger.error("%s", e)
        return 1
    with atomic_write(args.out) as f:
        for r, (cid, c) in enumerate(ranking, 1):
            f.write(f"{r} {cid} {c:.6f}\n")
    logger.info("best of %d for %r: %s (cosine %.4f)", len(ranking), args.prompt, ranking[0][0], ranking[0][1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
