"""Speaker-group cross-validation folds of a data dir, or a check of folds a recipe listed.

    python -m parastyle.bin.make_folds --folds 5 [--dev 0.1] [--seed 0] [--factors emotion,gender] \\
        [--report data/folds_report.txt] data/all data
    python -m parastyle.bin.make_folds --check data
    python -m parastyle.bin.make_folds --attach_feats data/all data

The first form writes ``data/fold<k>/{train,dev,test}`` (k = 1..5): every speaker is tested in
one fold, test folds are stratified by class, each fold's dev speakers come from its non-test
speakers. The second checks folds written by ``local/data.sh`` (sets present, speaker-disjoint
within a fold, no speaker tested twice) and prints their names. The third gives every fold set
the features of ``data/all`` (one extraction for all folds). See parastyle/data/folds.py.
"""
from __future__ import annotations

import argparse
import sys

from parastyle.data.folds import FOLD_SETS, attach_features, check_folds, make_folds, write_report
from parastyle.fileio import DataError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make_folds", description=__doc__.split("\n\n")[0])
    p.add_argument("--folds", type=int, default=None, help="number of folds to make")
    p.add_argument("--check", action="store_true", help="only check the folds under the given root")
    p.add_argument("--attach_feats", default=None, metavar="SRC",
                   help="give every fold set under ROOT the features of data dir SRC")
    p.add_argument("--dev", default="0.1", help="dev speakers of each fold: fraction of its non-test speakers or count")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--factors", default=None, help="comma-separated factors to stratify on (default: all)")
    p.add_argument("--report", default=None, help="also write the per-fold counts here")
    p.add_argument("paths", nargs="+", help="SRC ROOT (make) or ROOT (--check, --attach_feats)")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    try:
        if args.attach_feats:
            if len(args.paths) != 1:
                raise DataError("--attach_feats SRC takes one directory (the root holding fold<k>/)")
            for d in check_folds(args.paths[0]):
                for name in FOLD_SETS:
                    n = attach_features(args.attach_feats, d / name)
                    print(f"{d / name}: features of {n} utterance(s) from {args.attach_feats}")
            return 0
        if args.check:
            if len(args.paths) != 1:
                raise DataError("--check takes one directory (the root holding fold<k>/)")
            for d in check_folds(args.paths[0]):
                print(d.name)
            return 0
        if args.folds is None or len(args.paths) != 2:
            raise DataError("give --folds K and two directories: the source data dir and the root of fold<k>/")
        factors = [f for f in args.factors.split(",") if f] if args.factors else None
        report = make_folds(args.paths[0], args.paths[1], args.folds, dev=args.dev, seed=args.seed,
                            factors=factors)
    except DataError as e:
        print(f"make_folds: error: {e}", file=sys.stderr)
        return 1
    print(report.text())
    if args.report:
        write_report(report, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
