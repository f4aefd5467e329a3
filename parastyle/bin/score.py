"""Score a trained classifier on a data dir: per-factor UAR, macro-F1, accuracy, confusion matrices.

    python -m parastyle.bin.score --exp exp/ce --data data/test [--checkpoint model.pt] \\
        [--results_md RESULTS.md] [--tag name]

Writes ``<exp>/decode_<set>/`` (``results.json``, ``confusion_<factor>.csv`` / ``.png``,
``utt2pred_<factor>``); see :mod:`parastyle.evaluate.scoring`.
"""
from __future__ import annotations

import argparse
import logging
import sys

from parastyle.evaluate.scoring import score  # noqa: F401  (re-exported for callers of the verb)
from parastyle.fileio import DataError
from parastyle.train.checkpoint import CheckpointError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoint", default=None, help="default: model.pt (averaged best checkpoints)")
    p.add_argument("--results_md", default=None, help="recipe RESULTS.md whose table is regenerated")
    p.add_argument("--tag", default=None, help="method name in results.json (default: the model name)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        r = score(args.exp, args.data, args.checkpoint, args.results_md, args.tag, args.device)
    except (DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for f, m in r["metrics"].items():
        print(f"{r['test_set']} {f}: UAR={m['balanced_accuracy']:.4f} macroF1={m['macro_f1']:.4f} "
              f"acc={m['accuracy']:.4f} n={m['n']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
