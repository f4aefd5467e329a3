"""Evaluate a speech/caption model: caption retrieval and zero-shot style classification.

    python -m parastyle.bin.eval_clap --exp exp/clap --data data/test [--lang_dir data/lang] \\
        [--factors emotion,gender] [--template "A person is speaking in a {label} style."] \\
        [--label_names conf/label_names.json] \\
        [--checkpoint model.pt] [--results_md RESULTS.md] [--tag name] [--device cpu]

Writes ``<exp>/decode_<set>/results.json`` and ``utt2pred_<factor>``; the procedures are in
:mod:`parastyle.evaluate.clap`.
"""
from __future__ import annotations

import argparse
import logging
import sys

import torch

from parastyle.evaluate.clap import (DEFAULT_TEMPLATE, evaluate, label_prompt,  # noqa: F401  (re-exported)
                                     read_label_names)
from parastyle.fileio import DataError
from parastyle.train.checkpoint import CheckpointError

logger = logging.getLogger("eval_clap")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exp", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--lang_dir", default=None)
    ap.add_argument("--factors", default=None, help="comma-separated factors (default: every utt2<factor>)")
    ap.add_argument("--template", default=DEFAULT_TEMPLATE)
    ap.add_argument("--label_names", default=None, help="JSON {factor: {label: words used in the prompt}}")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--results_md", default=None)
    ap.add_argument("--tag", default=None, help="test set name (default: basename of --data)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    factors = [f for f in args.factors.split(",") if f] if args.factors else None
    try:
        names = read_label_names(args.label_names) if args.label_names else None
        evaluate(args.exp, args.data, args.lang_dir, factors, args.template, args.checkpoint,
                 args.results_md, args.tag, device, names)
    except (DataError, CheckpointError, ValueError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
