#!/usr/bin/env python3
"""Headroom check of the synthetic corpus with the toolkit's standard baseline, speaker-independent.

The baseline is the shared ``egemaps_svm`` method (parastyle/evaluate/egemaps_svm.py: openSMILE
eGeMAPS v02 functionals + standardisation + linear SVM, C chosen on dev), the same one every style
recipe runs with ``--methods egemaps_svm``. Split: ``--num_folds`` speaker-group folds made by
parastyle/data/folds.py (stratified by class; each fold's dev speakers choose C, its test speakers
are unseen). Metric: UAR (balanced accuracy) per factor: mean +- std over folds and pooled over
the union of the test folds.

Usage::

    python egs/synth/local/baseline.py --data data/all --lang data/lang [--num_folds 5 --seed 0 \\
        --work exp/baseline_cv --cache dump/egemaps --nj 2 --json out.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from parastyle.evaluate.egemaps_svm import cross_validate
from parastyle.fileio import DataError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="Kaldi data dir from make_synth_corpus")
    p.add_argument("--lang", required=True, type=Path, help="label vocabularies (data/lang)")
    p.add_argument("--num_folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("exp/baseline_cv"), help="folds and exps are written here")
    p.add_argument("--cache", type=Path, default=None, help="eGeMAPS feature cache (e.g. dump/egemaps)")
    p.add_argument("--nj", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    t0 = time.time()
    try:
        res = cross_validate(args.data, args.lang, args.work, args.num_folds, args.seed, cache_dir=args.cache,
                             nj=args.nj)
    except DataError as e:
        print(f"baseline.py: error: {e}", file=sys.stderr)
        return 1
    res.update(seconds=round(time.time() - t0, 1), date=time.strftime("%Y-%m-%d", time.gmtime()),
               machine=f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
