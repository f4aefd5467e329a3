"""eGeMAPS v02 functionals + standardisation + linear SVM / logistic regression (C chosen on dev).

    python -m parastyle.bin.egemaps_svm train --train_data data/train --valid_data data/dev \\
        --lang_dir data/lang --exp exp/egemaps_svm [--config conf/train_egemaps_svm.yaml] \\
        [--cache dump/egemaps] [--nj 2] [--set classifier=logreg]
    python -m parastyle.bin.egemaps_svm score --exp exp/egemaps_svm --data data/test \\
        [--results_md RESULTS.md] [--tag egemaps_svm] [--cache dump/egemaps] [--nj 2]

``--config`` is a YAML file of options (``classifier``, ``C_grid``, ``factors``, ``sample_rate``,
``max_iter``, ``seed``; an ``egemaps_svm:`` mapping, or the options at top level); ``--set k=v``
overrides one (YAML value). A finished exp is reused only when it was trained on the same
config, data and vocabularies. See parastyle/evaluate/egemaps_svm.py.
"""
from __future__ import annotations

import argparse
import logging
import sys

import yaml

from parastyle.evaluate.egemaps_svm import score, train
from parastyle.fileio import DataError


def _config(args) -> dict:
    conf = {}
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
        if "egemaps_svm" in conf:
            conf = conf["egemaps_svm"] or {}
    for item in args.set or []:
        if "=" not in item:
            raise DataError(f"--set {item!r}: expected key=value")
        k, v = item.split("=", 1)
        conf[k] = yaml.safe_load(v)
    return conf


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="egemaps_svm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--train_data", required=True)
    t.add_argument("--valid_data", required=True)
    t.add_argument("--lang_dir", required=True)
    t.add_argument("--exp", required=True)
    t.add_argument("--config", default=None)
    t.add_argument("--set", action="append", help="override one option: key=value")
    s = sub.add_parser("score")
    s.add_argument("--exp", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--results_md", default=None)
    s.add_argument("--tag", default=None)
    for q in (t, s):
        q.add_argument("--cache", default=None, help="feature cache dir shared by all sets (e.g. dump/egemaps)")
        q.add_argument("--nj", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.cmd == "train":
            train(args.train_data, args.valid_data, args.lang_dir, args.exp, _config(args), args.cache, args.nj)
        else:
            r = score(args.exp, args.data, args.results_md, args.tag, args.cache, args.nj)
            for f, m in r["metrics"].items():
                print(f"{r['test_set']} {f}: UAR={m['balanced_accuracy']:.4f} macroF1={m['macro_f1']:.4f} "
                      f"acc={m['accuracy']:.4f} n={m['n']}")
    except DataError as e:
        print(f"egemaps_svm: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
