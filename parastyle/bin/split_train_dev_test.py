"""Speaker-independent train/dev/test split, stratified so that train holds every class.

    python -m parastyle.bin.split_train_dev_test [--dev 0.1] [--test 0.1] [--seed 0] \
        [--factors emotion,gender] [--report split_report.txt] data/all data/train data/dev data/test

``--dev``/``--test`` are fractions of the speakers (``0.1``) or speaker counts (``2``); train
gets the rest. No speaker is in two sets. The per-set class counts are printed (and written to
``--report``). See parastyle/data/split.py for the greedy algorithm.
"""
from __future__ import annotations

import argparse
import sys

from parastyle.data.split import split_train_dev_test
from parastyle.fileio import DataError, atomic_write


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="split_train_dev_test", description=__doc__.split("\n\n")[0])
    p.add_argument("--dev", default="0.1", help="dev speakers: fraction < 1 or count (default 0.1)")
    p.add_argument("--test", default="0.1", help="test speakers: fraction < 1 or count (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--factors", default=None,
                   help="comma-separated factors to stratify on (default: every utt2<factor> file)")
    p.add_argument("--report", default=None, help="also write the per-set class counts here")
    p.add_argument("src")
    p.add_argument("train_dir")
    p.add_argument("dev_dir")
    p.add_argument("test_dir")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    factors = [f for f in args.factors.split(",") if f] if args.factors else None
    try:
        result = split_train_dev_test(args.src, args.train_dir, args.dev_dir, args.test_dir,
                                      dev=args.dev, test=args.test, seed=args.seed, factors=factors)
    except DataError as e:
        print(f"split_train_dev_test: error: {e}", file=sys.stderr)
        return 1
    text = result.report()
    print(text)
    if args.report:
        with atomic_write(args.report) as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
