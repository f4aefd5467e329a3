"""Validate a Kaldi data directory and report every problem with its file and line.

    python -m parastyle.bin.validate_data_dir [--no-feats] [--no-text] [--no-wav] [--no-spk-sort] [--lang_dir data/lang] data/train

Exit status 0 when valid, 1 when any problem is found (all are printed, one per line), 2 on
usage errors.
"""
from __future__ import annotations

import argparse
import sys

from parastyle.data.datadir import validate_data_dir
from parastyle.fileio import DataError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="validate_data_dir", description=__doc__.split("\n\n")[0])
    p.add_argument("--no-feats", "--no_feats", dest="no_feats", action="store_true",
                   help="do not require feats.scp (before feature extraction)")
    p.add_argument("--no-text", "--no_text", dest="no_text", action="store_true",
                   help="do not require a text file")
    p.add_argument("--no-wav", "--no_wav", dest="no_wav", action="store_true",
                   help="do not require wav.scp (features-only directory)")
    p.add_argument("--no-spk-sort", "--no_spk_sort", dest="no_spk_sort", action="store_true",
                   help="do not require utt2spk sorted by speaker as well as by utterance")
    p.add_argument("--lang_dir", "--lang-dir", dest="lang_dir", default=None,
                   help="check every factor label against <lang_dir>/<factor>.txt")
    p.add_argument("data_dir")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    try:
        problems = validate_data_dir(args.data_dir, no_feats=args.no_feats, no_wav=args.no_wav,
                                     no_text=args.no_text, lang_dir=args.lang_dir,
                                     no_spk_sort=args.no_spk_sort)
    except DataError as e:  # e.g. an unreadable vocabulary file
        problems = [str(e)]
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        print(f"validate_data_dir: {args.data_dir}: {len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"validate_data_dir: successfully validated data-directory {args.data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
