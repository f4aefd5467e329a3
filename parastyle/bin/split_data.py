"""Split a data directory into N parts for parallel jobs: <data>/split<N>/<n>/ (n = 1..N).

    python -m parastyle.bin.split_data [--per-utt] data/train 4

By default a speaker's utterances stay in one part (balanced by utterance count); with
``--per-utt`` utterances are split evenly into ``<data>/split<N>utt/<n>/``.
"""
from __future__ import annotations

import argparse
import sys

from parastyle.data.dirops import split_data_dir
from parastyle.fileio import DataError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="split_data", description=__doc__.split("\n\n")[0])
    p.add_argument("--per-utt", "--per_utt", dest="per_utt", action="store_true",
                   help="split by utterance (speakers may span parts); output in split<N>utt")
    p.add_argument("data_dir")
    p.add_argument("num_jobs", type=int)
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    try:
        dirs = split_data_dir(args.data_dir, args.num_jobs, per_utt=args.per_utt)
    except DataError as e:
        print(f"split_data: error: {e}", file=sys.stderr)
        return 1
    print(f"split_data: wrote {len(dirs)} parts under {dirs[0].parent}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
