"""Evaluate a trained ParaMETA exp: t-SNE plots, leakage matrix, style manipulation, text prompts.

    python -m parastyle.bin.eval_parameta --exp exp/parameta --train_data data/train --data data/test \\
        [--checkpoint model.pt] [--results_md RESULTS.md] [--max_tsne 1500] [--knn 10]

Writes into ``<exp>/decode_<set>/`` (t-SNE PNGs; ``leakage``, ``manipulation``, ``text_prompt`` in
``results.json``); the procedures and their definitions are in :mod:`parastyle.evaluate.parameta`.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from parastyle.evaluate.parameta import evaluate
from parastyle.fileio import DataError
from parastyle.train.checkpoint import CheckpointError

logger = logging.getLogger("eval_parameta")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True)
    p.add_argument("--train_data", required=True, help="data dir the leakage probes and k-NN bank use")
    p.add_argument("--data", required=True, help="evaluation data dir")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--results_md", default=None, help="RESULTS.md receiving a section for this exp/set")
    p.add_argument("--max_tsne", type=int, default=1500, help="max points per t-SNE plot (random subset); 0 = no plots")
    p.add_argument("--knn", type=int, default=10, help="neighbours for the META-space manipulation check")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        res = evaluate(args.exp, args.train_data, args.data, args.checkpoint, args.results_md, args.max_tsne,
                       args.knn, args.device)
    except (DataError, CheckpointError, ValueError, KeyError, FileNotFoundError) as e:
        logger.error("%s", e)
        return 1
    logger.info("text prompt: %s", json.dumps(res.get("text_prompt")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
