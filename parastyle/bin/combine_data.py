"""Combine several data directories into one.

    python -m parastyle.bin.combine_data [--lang_dir data/lang] data/all data/corpus_a data/corpus_b ...

Utterance ids must be unique across inputs. Style-factor, caption and tag files present in
only some inputs keep their lines (the other utterances get an unknown label). With
``--lang_dir``, the label vocabularies there are extended by every label (by name).
"""
from __future__ import annotations

import argparse
import sys

from parastyle.data.dirops import combine_data_dirs
from parastyle.fileio import DataError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="combine_data", description=__doc__.split("\n\n")[0])
    p.add_argument("--lang_dir", "--lang-dir", dest="lang_dir", default=None,
                   help="extend <lang_dir>/<factor>.txt with the combined labels")
    p.add_argument("dest")
    p.add_argument("srcs", nargs="+")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    try:
        notes = combine_data_dirs(args.dest, args.srcs, lang_dir=args.lang_dir)
    except DataError as e:
        print(f"combine_data: error: {e}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"combine_data: note: {note}", file=sys.stderr)
    print(f"combine_data: combined {len(args.srcs)} directories into {args.dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
