"""Style vector of every utterance of data dirs from its own recording (speech prompt), for TTS training.

    python -m parastyle.bin.make_style_vectors --style_exp exp/parameta [--mode subspaces|meta] \\
        --data data/train --dump dump/train [--data data/dev --dump dump/dev ...]

Writes ``<dump>/style.ark``, ``<data>/style_conf.yaml`` (style exp, kind, mode, dim) and, last,
``<data>/style.scp``. Vectors: see :mod:`parastyle.evaluate.synthesis` (ParaMETA: LayerNorm-ed
subspaces concatenated, or META; CLAP: the speech embedding).
"""
from __future__ import annotations

import argparse
import logging
import sys

from parastyle.fileio import DataError
from parastyle.train.checkpoint import CheckpointError

logger = logging.getLogger("make_style_vectors")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--style_exp", required=True, help="ParaMETA or CLAP exp dir")
    ap.add_argument("--mode", default="subspaces", choices=["subspaces", "meta"])
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--dump", action="append", required=True, help="one per --data")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if len(args.data) != len(args.dump):
        logger.error("give one --dump per --data (%d vs %d)", len(args.data), len(args.dump))
        return 2
    from parastyle.evaluate.synthesis import StyleEncoder, write_style_vectors
    try:
        enc = StyleEncoder(args.style_exp, mode=args.mode, device=args.device)
        for d, dump in zip(args.data, args.dump):
            n = write_style_vectors(enc, d, dump)
            logger.info("%s/style.scp: %d vectors (%s, %s)", d, n, enc.kind, enc.mode)
    except (DataError, CheckpointError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
