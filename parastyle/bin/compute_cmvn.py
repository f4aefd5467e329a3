"""Global CMVN statistics of a data dir's features (Kaldi (2, D+1) stats matrix).

    python -m parastyle.bin.compute_cmvn --data data/train [--out data/train/cmvn.ark]

Reads every utterance of ``<data>/feats.scp``; writes the statistics atomically (default
``<data>/cmvn.ark``, the path the training configs' ``data.cmvn: auto`` resolves to).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from parastyle.features.cmvn import CMVNStats
from parastyle.fileio import DataError, read_kv


def compute_cmvn(data_dir, out=None) -> CMVNStats:
    import kaldiio
    d = Path(data_dir)
    scp = read_kv(d / "feats.scp")
    if not scp:
        raise DataError(f"{d}/feats.scp: no utterances")
    stats = None
    for utt, entry in scp.items():
        try:
            m = kaldiio.load_mat(entry)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{d}/feats.scp: cannot read features of {utt!r} ({entry}): {e}") from None
        if stats is None:
            stats = CMVNStats(m.shape[1])
        if m.ndim != 2 or m.shape[1] != stats.dim:
            raise DataError(f"{d}/feats.scp: features of {utt!r} have shape {m.shape}, expected (T, {stats.dim})")
        stats.accumulate(m)
    stats.save(out or d / "cmvn.ark")
    return stats


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
