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
import random
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from parastyle.data.dirops import subset_data_dir
from parastyle.fileio import DataError, read_kv


def assign_utterances(spk2utts: Dict[str, List[str]], dev: float, test: float, seed: int
                      ) -> Tuple[Dict[str, List[str]], int]:
    """``({"train": [...], "dev": [...], "test": [...]}, number of train-only speakers)``."""
    if not (0 <= dev < 1 and 0 <= test < 1 and dev + test < 1):
        raise ValueError(f"dev ({dev}) and test ({test}) must be fractions with dev + test < 1")
    rng = random.Random(seed)
    sets: Dict[str, List[str]] = {"train": [], "dev": [], "test": []}
    small = 0
    for spk in sorted(spk2utts):
        utts = sorted(spk2utts[spk])
        rng.shuffle(utts)
        n = len(utts)
        if n < 3:
            sets["train"].extend(utts)
            small += 1
            continue
        n_dev = max(1, round(n * dev)) if dev > 0 else 0
        n_test = max(1, round(n * test)) if test > 0 else 0
        while n - n_dev - n_test < 1:       # keep at least one training utterance
            if n_test >= n_dev:
                n_test -= 1
            else:
                n_dev -= 1
        sets["dev"].extend(utts[:n_dev])
        sets["test"].extend(utts[n_dev:n_dev + n_test])
        sets["train"].extend(utts[n_dev + n_test:])
    return sets, small


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
        utt2spk = read_kv(Path(args.src) / "utt2spk")
        spk2utts: Dict[str, List[str]] = {}
        for u, s in utt2spk.items():
            spk2utts.setdefault(s, []).append(u)
        sets, small = assign_utterances(spk2utts, args.dev, args.test, args.seed)
        for name, dst in (("train", args.train_dir), ("dev", args.dev_dir), ("test", args.test_dir)):
            if not sets[name]:
                raise DataError(f"{args.src}: the {name} set would be empty")
            subset_data_dir(args.src, dst, utt_list=sets[name])
    except (DataError, ValueError) as e:
        print(f"split_within_speakers: error: {e}", file=sys.stderr)
        return 1
    print(f"split_within_speakers: {len(spk2utts)} speakers; utterances train {len(sets['train'])}, "
          f"dev {len(sets['dev'])}, test {len(sets['test'])}; {small} speaker(s) with < 3 utterances in train only",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
