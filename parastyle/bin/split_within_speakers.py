"""Closed-set split: every speaker's utterances are divided between train, dev and test.

    python -m parastyle.bin.split_within_speakers [--dev 0.1] [--test 0.2] [--seed 0] \\
        data/all data/spk_train data/spk_dev data/spk_test

For speaker identification the same speakers must appear in every set (different utterances).
Per speaker, its utterances are shuffled (seeded) and ``round(n * dev)`` go to dev, ``round(n * test)``
to test (each at least 1 when the fraction is positive and the speaker has >= 3 utterances), the
rest (at least 1) to train. A speaker with fewer than 3 utterances goes to train only (counted and
reported).
"""
from __future__ import annotations

import argparse
import sys

from parastyle.data.split import assign_utterances, split_within_speakers  # noqa: F401  (re-exported)
from parastyle.fileio import DataError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dev", type=float, default=0.1)
    p.add_argument("--test", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("src")
    p.add_argument("train_dir")
    p.add_argument("dev_dir")
    p.add_argument("test_dir")
    args = p.parse_args(argv)
    try:
        sets, num_spk, small = split_within_speakers(args.src, args.train_dir, args.dev_dir, args.test_dir,
                                                     args.dev, args.test, args.seed)
    except (DataError, ValueError) as e:
        print(f"split_within_speakers: error: {e}", file=sys.stderr)
        return 1
    print(f"split_within_speakers: {num_spk} speakers; utterances train {len(sets['train'])}, "
          f"dev {len(sets['dev'])}, test {len(sets['test'])}; {small} speaker(s) with < 3 utterances in train only",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
