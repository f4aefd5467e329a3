"""Best-of-N selection: rank N candidate waveforms (e.g. TTS outputs) by their match to a style prompt.

    python -m parastyle.bin.best_of_n --exp exp/clap --prompt "A person is speaking in a happy style." \\
        --candidates <dir of .wav | wav.scp> --out ranking.txt [--feats_conf data/train/feats_conf.yaml] \\
        [--checkpoint model.pt] [--device cpu]

The output file has one line per candidate, ``<rank> <candidate id> <cosine>`` (rank 1 = best),
written atomically. Candidate ids are the file names without ``.wav`` (directory) or the wav.scp
keys. The procedure is :mod:`parastyle.evaluate.best_of_n`.
"""
from __future__ import annotations

import argparse
import logging
import sys

import torch

from parastyle.evaluate.best_of_n import read_candidates, rank_candidates  # noqa: F401  (re-exported)
from parastyle.fileio import DataError, atomic_write
from parastyle.train.checkpoint import CheckpointError

logger = logging.getLogger("best_of_n")


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
