"""Speaker-independent train/dev/test split, stratified so train sees every class.

No speaker appears in two sets. Set sizes are given in speakers, as fractions (``0.1``) or
counts (``2``); train takes the rest.

Greedy algorithm (deterministic for a seed):

1. Shuffle the speakers with ``random.Random(seed)``; this order breaks every tie below.
   Each speaker has a set of *classes*: the ``(factor, label)`` pairs of its utterances.
2. **Train coverage.** While some class has no speaker in train and train has room: take the
   uncovered class held by the fewest unassigned speakers (the rarest), and move to train the
   unassigned speaker holding it that covers the most still-uncovered classes.
   A class no longer coverable is left out (reported as missing from train).
3. **Dev/test diversity.** Alternately for test and dev, while they have room: give the set
   the unassigned speaker adding the most classes not yet in that set.
4. The remaining speakers go to train.

Afterwards disjointness and completeness are asserted, and per-set class counts (in
utterances) are reported.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

from parastyle.data.datadir import (DataDir, copied_files, read_tables, subset_tables, write_tables)
from parastyle.fileio import DataError, PathLike, c_sort_key

SET_NAMES = ("train", "dev", "test")
Class = Tuple[str, str]


def resolve_size(size: Union[int, float, str], num_speakers: int, what: str) -> int:
    """Number of speakers for a set: a fraction in [0, 1) of ``num_speakers`` (rounded, at
    least 1 when positive) or a whole count (``"3"``, ``3``, ``3.0``)."""
    value = float(size)
    if value < 0:
        raise DataError(f"split: {what} size must be >= 0, got {size!r}")
    if value < 1:
        n = int(round(value * num_speakers))
        return max(n, 1) if value > 0 else 0
    if value != int(value):
        raise DataError(f"split: {what} size {size!r} is neither a fraction < 1 nor a whole speaker count")
    return int(value)


@dataclass
class SplitResult:
    """Outcome of :func:`assign_speakers`: speaker -> set name, per-set class counts
    (``counts[set][factor][label]`` in utterances) and warnings (classes missing from train)."""
    assignment: Dict[str, str]
    counts: Dict[str, Dict[str, Dict[str, int]]] = field(default_factory=dict)
    num_utts: Dict[str, int] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)

    def speakers(self, set_name: str) -> List[str]:
        return sorted((s for s, k in self.assignment.items() if k == set_name), key=c_sort_key)

    def report(self) -> str:
        """Human-readable table: speakers, utterances and class counts per set."""
        lines = []
        factors = sorted({f for c in self.counts.values() for f in c})
        for name in SET_NAMES:
            lines.append(f"{name}: {len(self.speakers(name))} speakers, {self.num_utts.get(name, 0)} utterances")
            for f in factors:
                cls = self.counts.get(name, {}).get(f, {})
                lines.append(f"  {f}: " + " ".join(f"{lab}={cls[lab]}" for lab in sorted(cls, key=c_sort_key)))
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def assign_speakers(utt2spk: Dict[str, str], factors: Dict[str, Dict[str, str]],
                    dev: Union[int, float, str] = 0.1, test: Union[int, float, str] = 0.1,
                    seed: int = 0) -> SplitResult:
    """Assign every speaker to train, dev or test (see the module docstring for the algorithm).

    ``factors`` maps factor name -> ``{utt: label}`` (utterances without a label are ignored).
    """
    speakers = sorted(set(utt2spk.values()), key=c_sort_key)
    n_spk = len(speakers)
    n_dev = resolve_size(dev, n_spk, "dev")
    n_test = resolve_size(test, n_spk, "test")
    if n_dev + n_test >= n_spk:
        raise DataError(f"split: {n_spk} speakers cannot give {n_dev} dev + {n_test} test speakers and "
                        f"at least one train speaker")
    quota = {"train": n_spk - n_dev - n_test, "dev": n_dev, "test": n_test}

    classes: Dict[str, Set[Class]] = {s: set() for s in speakers}
    for f, labels in factors.items():
        for utt, label in labels.items():
            classes[utt2spk[utt]].add((f, label))
    order = list(speakers)
    random.Random(seed).shuffle(order)
    rank = {s: i for i, s in enumerate(order)}
    assignment: Dict[str, str] = {}
    members: Dict[str, List[str]] = {k: [] for k in SET_NAMES}

    def give(spk: str, name: str) -> None:
        assignment[spk] = name
        members[name].append(spk)

    # 2. train coverage, rarest class first.
    all_classes = set().union(*classes.values()) if classes else set()
    uncovered = set(all_classes)
    while uncovered and len(members["train"]) < quota["train"]:
        holders = {c: [s for s in order if s not in assignment and c in classes[s]] for c in uncovered}
        coverable = [c for c in uncovered if holders[c]]
        if not coverable:
            break
        rarest = min(coverable, key=lambda c: (len(holders[c]), c_sort_key(c[0]), c_sort_key(c[1])))
        best = max(holders[rarest], key=lambda s: (len(classes[s] & uncovered), -rank[s]))
        give(best, "train")
        uncovered -= classes[best]

    # 3. dev/test diversity, alternating.
    seen: Dict[str, Set[Class]] = {"dev": set(), "test": set()}
    while len(members["test"]) < quota["test"] or len(members["dev"]) < quota["dev"]:
        for name in ("test", "dev"):
            if len(members[name]) >= quota[name]:
                continue
            free = [s for s in order if s not in assignment]
            best = max(free, key=lambda s: (len(classes[s] - seen[name]), -rank[s]))
            give(best, name)
            seen[name] |= classes[best]

    # 4. the rest to train.
    for s in order:
        if s not in assignment:
            give(s, "train")

    assert set(assignment) == set(speakers), "every speaker is assigned"
    for a in SET_NAMES:
        for b in SET_NAMES:
            if a < b:
                assert not set(members[a]) & set(members[b]), f"speakers shared by {a} and {b}"

    result = SplitResult(assignment)
    for name in SET_NAMES:
        result.counts[name] = {f: {} for f in factors}
        result.num_utts[name] = sum(1 for u in utt2spk if assignment[utt2spk[u]] == name)
    for f, labels in factors.items():
        for utt, label in labels.items():
            c = result.counts[assignment[utt2spk[utt]]][f]
            c[label] = c.get(label, 0) + 1
    train_classes = set().union(*(classes[s] for s in members["train"])) if members["train"] else set()
    for f, label in sorted(all_classes - train_classes):
        where = sorted({assignment[s] for s in speakers if (f, label) in classes[s]})
        result.warnings.append(f"{f} class {label!r} has no train speaker (only in {', '.join(where)})")
    return result


def split_train_dev_test(src: PathLike, train_dir: PathLike, dev_dir: PathLike, test_dir: PathLike,
                         dev: Union[int, float, str] = 0.1, test: Union[int, float, str] = 0.1,
                         seed: int = 0, factors: Optional[Sequence[str]] = None) -> SplitResult:
    """Split data directory ``src`` by speaker into three directories (each written atomically).

    ``factors`` restricts the stratification to those factors (default: all factor files).
    After writing, the three directories are re-read and checked to share no speaker.
    """
    outs = [Path(train_dir), Path(dev_dir), Path(test_dir)]
    if len({o.resolve() for o in outs} | {Path(src).resolve()}) != 4:
        raise DataError(f"split: {src}, {train_dir}, {dev_dir} and {test_dir} must be four different directories")
    data = DataDir(src)
    names = list(factors) if factors is not None else data.factor_names
    result = assign_speakers(data.utt2spk, {f: data.factor(f) for f in names}, dev=dev, test=test, seed=seed)
    tables = read_tables(src)
    dirs = {"train": Path(train_dir), "dev": Path(dev_dir), "test": Path(test_dir)}
    for name, out in dirs.items():
        spks = set(result.speakers(name))
        utts = [u for u, s in data.utt2spk.items() if s in spks]
        write_tables(out, subset_tables(tables, utts), copy_files=copied_files(src))
    written = {name: set(DataDir(d).utt2spk.values()) for name, d in dirs.items()}
    for a in SET_NAMES:
        for b in SET_NAMES:
            if a < b and written[a] & written[b]:
                raise AssertionError(f"split: speakers {sorted(written[a] & written[b])} in both {a} and {b}")
    return result


# ----------------------------------------------------------------------------------------------
# closed-set split: the same speakers in every set
# ----------------------------------------------------------------------------------------------

def assign_utterances(spk2utts: Dict[str, List[str]], dev: float, test: float, seed: int
                      ) -> Tuple[Dict[str, List[str]], int]:
    """Per speaker, shuffled (seeded) utterances: ``round(n * dev)`` to dev, ``round(n * test)`` to test
    (each at least 1 when the fraction is positive), the rest (at least 1) to train; a speaker with fewer
    than 3 utterances goes to train only.

    Returns ``({"train": [...], "dev": [...], "test": [...]}, number of train-only speakers)``."""
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


def split_within_speakers(src: PathLike, train_dir: PathLike, dev_dir: PathLike, test_dir: PathLike,
                          dev: float = 0.1, test: float = 0.2, seed: int = 0) -> Tuple[Dict[str, List[str]], int, int]:
    """Write the closed-set split of ``src`` (:func:`assign_utterances`) as three data dirs.

    Returns ``(sets, number of speakers, number of train-only speakers)``; an empty set is a DataError."""
    from parastyle.data.dirops import subset_data_dir
    from parastyle.fileio import read_kv
    utt2spk = read_kv(Path(src) / "utt2spk")
    spk2utts: Dict[str, List[str]] = {}
    for u, s in utt2spk.items():
        spk2utts.setdefault(s, []).append(u)
    sets, small = assign_utterances(spk2utts, dev, test, seed)
    for name in ("train", "dev", "test"):
        if not sets[name]:
            raise DataError(f"{src}: the {name} set would be empty")
    for name, dst in (("train", train_dir), ("dev", dev_dir), ("test", test_dir)):
        subset_data_dir(src, dst, utt_list=sets[name])
    return sets, len(spk2utts), small
