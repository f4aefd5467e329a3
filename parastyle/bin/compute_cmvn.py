"""Global CMVN statistics of a data dir's features (Kaldi (2, D+1) stats matrix).

    python -m parastyle.bin.compute_cmvn --data data/train [--out data/train/cmvn.ark]

Reads every utterance of ``<data>/feats.scp``; writes the statistics atomically (default
``<data>/cmvn.ark``, the path the training configs' ``data.cmvn: auto`` resolves to). The
procedure is :func:`parastyle.features.cmvn.compute_data_dir_cmvn`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from parastyle.features.cmvn import compute_data_dir_cmvn as compute_cmvn  # noqa: F401  (re-exported)
from parastyle.fileio import DataError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="compute_cmvn", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="data dir with feats.scp")
    p.add_argument("--out", default=None, help="statistics file (default <data>/cmvn.ark)")
    args = p.parse_args(argv)
    try:
        stats = compute_cmvn(args.data, args.out)
    except (DataError, ValueError) as e:
        print(f"compute_cmvn: error: {e}", file=sys.stderr)
        return 1
    print(f"compute_cmvn: {args.data}: {int(stats.count)} frames of dimension {stats.dim} -> "
          f"{args.out or Path(args.data) / 'cmvn.ark'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
