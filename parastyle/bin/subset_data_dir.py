"""Write a subset of a data directory, keeping every file consistent.

    python -m parastyle.bin.subset_data_dir --utt-list utts.txt data/all data/sub
    python -m parastyle.bin.subset_data_dir --spk-list spks.txt data/all data/sub
    python -m parastyle.bin.subset_data_dir --first 100 [--per-spk] data/all data/sub
    python -m parastyle.bin.subset_data_dir --last 100 [--per-spk] data/all data/sub
    python -m parastyle.bin.subset_data_dir --random 100 [--per-spk] [--seed 0] data/all data/sub
    python -m parastyle.bin.subset_data_dir [--per-spk] [--seed 0] data/all 100 data/sub   # = --random 100

List files hold one id per line (further fields are ignored). Ids that are not in the
directory are an error. ``--per-spk`` takes up to N utterances of every speaker.
"""
from __future__ import annotations

import argparse
import sys

from parastyle.data.datadir import read_utt_list
from parastyle.data.dirops import subset_data_dir
from parastyle.fileio import DataError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="subset_data_dir", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--utt-list", "--utt_list", dest="utt_list", help="file of utterance ids to keep")
    g.add_argument("--spk-list", "--spk_list", dest="spk_list", help="file of speaker ids to keep")
    g.add_argument("--first", type=int, help="keep the first N utterances (C order)")
    g.add_argument("--last", type=int, help="keep the last N utterances (C order)")
    g.add_argument("--random", type=int, help="keep a random sample of N utterances (see --seed)")
    p.add_argument("--per-spk", "--per_spk", dest="per_spk", action="store_true",
                   help="with --first/--last/--random: N utterances per speaker")
    p.add_argument("--seed", type=int, default=0, help="random seed of --random (default 0)")
    p.add_argument("positional", nargs="+", metavar="ARG", help="<src> <dst> or <src> <num-utt> <dst>")
    return p


def main(argv=None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    pos = args.positional
    if len(pos) == 3:
        if any(x is not None for x in (args.utt_list, args.spk_list, args.first, args.last, args.random)):
            parser.error("give either a selection option or <num-utt>, not both")
        try:
            args.random = int(pos[1])
        except ValueError:
            parser.error(f"<num-utt> must be an integer, got {pos[1]!r}")
        src, dst = pos[0], pos[2]
    elif len(pos) == 2:
        src, dst = pos
    else:
        parser.error("expected <src> <dst> or <src> <num-utt> <dst>")
    if args.per_spk and (args.utt_list or args.spk_list):
        parser.error("--per-spk goes with --first, --last or --random")
    try:
        criterion = dict(utt_list=read_utt_list(args.utt_list) if args.utt_list else None,
                         spk_list=read_utt_list(args.spk_list) if args.spk_list else None,
                         first=args.first, last=args.last, random=args.random,
                         per_spk=args.per_spk, seed=args.seed)
        n = subset_data_dir(src, dst, **criterion)
    except (DataError, FileNotFoundError) as e:
        print(f"subset_data_dir: error: {e}", file=sys.stderr)
        return 1
    print(f"subset_data_dir: wrote {n} utterances to {dst}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
