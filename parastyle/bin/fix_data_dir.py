"""Make a data directory valid: sort files, drop utterances missing from a required file.

    python -m parastyle.bin.fix_data_dir data/train            # in place (old files in data/train/.backup)
    python -m parastyle.bin.fix_data_dir data/train data/train_fixed

Prints how many utterances were kept and, per reason, how many were dropped; then validates
the result and exits 1 if problems remain that fixing cannot solve (e.g. speaker ids that do
not prefix utterance ids).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from parastyle.data.datadir import validate_data_dir
from parastyle.data.dirops import fix_data_dir
from parastyle.fileio import DataError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fix_data_dir", description=__doc__.split("\n\n")[0])
    p.add_argument("data_dir")
    p.add_argument("out_dir", nargs="?", default=None, help="write here instead of rewriting data_dir")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    try:
        report = fix_data_dir(args.data_dir, args.out_dir)
    except DataError as e:
        print(f"fix_data_dir: error: {e}", file=sys.stderr)
        return 1
    out = Path(args.out_dir or args.data_dir)
    for line in report.summary().splitlines():
        print(f"fix_data_dir: {out}: {line}", file=sys.stderr)
    problems = validate_data_dir(out, no_feats=not (out / "feats.scp").is_file(),
                                 no_text=not (out / "text").is_file(), no_wav=not (out / "wav.scp").is_file())
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        print(f"fix_data_dir: {out}: {len(problems)} problem(s) remain that cannot be fixed automatically",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
