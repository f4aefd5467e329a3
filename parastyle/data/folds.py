"""Speaker-group cross-validation folds: made by the toolkit or listed by a corpus recipe.

A fold ``k`` (1-based) is three Kaldi data directories ``<root>/fold<k>/{train,dev,test}``.
Every speaker is in exactly one test fold; within a fold train, dev and test share no speaker.
Leave-one-speaker-out is ``K = number of speakers``; leave-one-session-out (IEMOCAP) is a
corpus's own listing of ``data/fold<k>/`` by ``local/data.sh``, checked by :func:`check_folds`.

Toolkit folds (:func:`assign_folds`, deterministic for a seed), stratified by class:

1. Each speaker has a set of *classes*, the ``(factor, label)`` pairs of its utterances, and a
   weight ``n_s`` (its utterances). Speakers are shuffled with ``random.Random(seed)`` (the
   order breaks every tie), then ordered by their rarest class (the class held by the fewest
   speakers first), so that rare classes are dealt before the folds fill up.
2. Each speaker goes to the fold minimising, in order: the sum over its classes ``c`` of the
   speakers of ``c`` already in that fold; the fold's utterance count; the fold index.
   A class held by at least ``K`` speakers therefore reaches every test fold.
3. The dev set of fold ``k`` is taken from its non-test speakers by the stratified speaker
   split of :mod:`parastyle.data.split` (``dev`` speakers: fraction or count); train is the rest.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

from parastyle.data.datadir import DataDir, copied_files, read_tables, subset_tables, write_tables
from parastyle.data.split import assign_speakers
from parastyle.fileio import DataError, PathLike, atomic_write, c_sort_key

FOLD_RE = re.compile(r"^fold(\d+)$")
FOLD_SETS = ("train", "dev", "test")
Class = Tuple[str, str]


def assign_folds(utt2spk: Dict[str, str], factors: Dict[str, Dict[str, str]], num_folds: int,
                 seed: int = 0) -> Dict[str, int]:
    """Speaker -> test fold ``1..num_folds`` (see the module docstring for the algorithm)."""
    speakers = sorted(set(utt2spk.values()), key=c_sort_key)
    if num_folds < 2:
        raise DataError(f"folds: need at least 2 folds, got {num_folds}")
    if num_folds > len(speakers):
        raise DataError(f"folds: {len(speakers)} speakers cannot fill {num_folds} speaker-disjoint test folds "
                        f"(at most one fold per speaker: leave-one-speaker-out is --folds {len(speakers)})")
    classes: Dict[str, Set[Class]] = {s: set() for s in speakers}
    n_utts: Dict[str, int] = {s: 0 for s in speakers}
    for utt, spk in utt2spk.items():
        n_utts[spk] += 1
    for f, labels in factors.items():
        for utt, label in labels.items():
            if utt not in utt2spk:
                raise DataError(f"folds: utterance {utt!r} of utt2{f} is not in utt2spk")
            classes[utt2spk[utt]].add((f, label))
    holders: Dict[Class, int] = {}
    for s in speakers:
        for c in classes[s]:
            holders[c] = holders.get(c, 0) + 1
    order = list(speakers)
    random.Random(seed).shuffle(order)
    rank = {s: i for i, s in enumerate(order)}
    order.sort(key=lambda s: (min((holders[c] for c in classes[s]), default=len(speakers) + 1), rank[s]))
    in_fold: List[Dict[Class, int]] = [dict() for _ in range(num_folds)]
    fold_utts = [0] * num_folds
    fold_spks = [0] * num_folds
    out: Dict[str, int] = {}
    for i, s in enumerate(order):
        empty = [k for k in range(num_folds) if fold_spks[k] == 0]
        # the speakers still to come must be able to fill the empty folds
        candidates = empty if len(order) - i <= len(empty) else range(num_folds)
        k = min(candidates, key=lambda k: (sum(in_fold[k].get(c, 0) for c in classes[s]), fold_utts[k], k))
        out[s] = k + 1
        fold_spks[k] += 1
        fold_utts[k] += n_utts[s]
        for c in classes[s]:
            in_fold[k][c] = in_fold[k].get(c, 0) + 1
    assert all(n > 0 for n in fold_spks), "every fold has a speaker"
    return out


@dataclass
class FoldsReport:
    """Per fold: speakers and utterances of train/dev/test, class counts of test, warnings."""
    lines: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines + [f"warning: {w}" for w in self.warnings])


def make_folds(src: PathLike, out_root: PathLike, num_folds: int, dev: Union[int, float, str] = 0.1,
               seed: int = 0, factors: Optional[Sequence[str]] = None) -> FoldsReport:
    """Write ``<out_root>/fold<k>/{train,dev,test}`` (k = 1..num_folds) from data dir ``src``.

    Each fold directory is built under a temporary name and renamed into place, so a killed
    run leaves no fold that looks complete. The written folds are re-read by :func:`check_folds`.
    """
    src, out_root = Path(src), Path(out_root)
    data = DataDir(src)
    names = list(factors) if factors is not None else data.factor_names
    labels = {f: data.factor(f) for f in names}
    fold_of = assign_folds(data.utt2spk, labels, num_folds, seed=seed)
    tables = read_tables(src)
    extra = copied_files(src)
    report = FoldsReport()
    for k in range(1, num_folds + 1):
        test_spk = {s for s, f in fold_of.items() if f == k}
        rest = {u: s for u, s in data.utt2spk.items() if s not in test_spk}
        n_rest_spk = len(set(rest.values()))
        if n_rest_spk < 2:
            raise DataError(f"folds: fold {k} leaves {n_rest_spk} non-test speaker(s); train and dev need at least 2")
        split = assign_speakers(rest, {f: {u: lab for u, lab in t.items() if u in rest} for f, t in labels.items()},
                                dev=dev, test=0, seed=seed + k)
        members = {"test": test_spk, "dev": set(split.speakers("dev")), "train": set(split.speakers("train"))}
        final = out_root / f"fold{k}"
        tmp = out_root / f".fold{k}.tmp"
        if tmp.exists():
            import shutil
            shutil.rmtree(tmp)
        for name in FOLD_SETS:
            utts = [u for u, s in data.utt2spk.items() if s in members[name]]
            write_tables(tmp / name, subset_tables(tables, utts), copy_files=extra)
            report.lines.append(f"fold{k}/{name}: {len(members[name])} speakers, {len(utts)} utterances")
        for w in split.warnings:
            report.warnings.append(f"fold{k}: {w}")
        for f, t in labels.items():
            test_classes = {lab for u, lab in t.items() if data.utt2spk[u] in test_spk}
            train_classes = {lab for u, lab in t.items() if data.utt2spk[u] in members["train"]}
            for lab in sorted(test_classes - train_classes, key=c_sort_key):
                report.warnings.append(f"fold{k}: {f} class {lab!r} is in test but has no train speaker")
        if final.exists():
            import shutil
            shutil.rmtree(final)
        tmp.rename(final)
    check_folds(out_root)
    return report


def fold_dirs(root: PathLike) -> List[Path]:
    """``<root>/fold<k>`` directories in numeric order (``fold2`` before ``fold10``)."""
    root = Path(root)
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := FOLD_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def check_folds(root: PathLike, sets: Sequence[str] = FOLD_SETS) -> List[Path]:
    """Check the folds under ``root`` (``fold<k>/{train,dev,test}``) and return their directories.

    Raises DataError naming the fold and speakers when: no fold is found; a fold lacks a set;
    a speaker is in two sets of one fold (a leak of test speakers into training); a speaker
    is in two test folds. A speaker in no test fold is allowed (a corpus may hold some out).
    """
    folds = fold_dirs(root)
    if not folds:
        raise DataError(f"{root}: no fold<k>/ directories (expected {root}/fold1/{{{','.join(sets)}}}, ...)")
    tested: Dict[str, str] = {}
    for fold in folds:
        spk: Dict[str, Set[str]] = {}
        for name in sets:
            d = fold / name
            if not (d / "utt2spk").is_file():
                raise DataError(f"{d}: missing (every fold needs {', '.join(sets)}; {d}/utt2spk not found)")
            spk[name] = set(DataDir(d).utt2spk.values())
        for i, a in enumerate(sets):
            for b in sets[i + 1:]:
                both = spk[a] & spk[b]
                if both:
                    raise DataError(f"{fold}: speaker(s) {sorted(both, key=c_sort_key)[:5]} in both {a} and {b}: "
                                    f"the sets of a fold must be speaker-disjoint")
        test = sets[-1]
        for s in spk[test]:
            if s in tested:
                raise DataError(f"{fold}/{test}: speaker {s!r} is also in {tested[s]}: each speaker may be "
                                f"tested in one fold only")
            tested[s] = f"{fold}/{test}"
    return folds


def write_report(report: FoldsReport, path: PathLike) -> None:
    with atomic_write(path) as f:
        f.write(report.text() + "\n")


FEATURE_TABLES = ("utt2num_frames", "feats.scp")   # feats.scp last: it marks the features complete
FEATURE_FILES = ("feats_conf.yaml", "frame_shift", "feats_arks")


def attach_features(src: PathLike, dst: PathLike) -> int:
    """Give data dir ``dst`` (a subset of ``src``) the features ``src`` has (``feats.scp``,
    ``utt2num_frames``, ``feats_conf.yaml``, ``frame_shift``), so the sets of every fold share
    one feature extraction. DataError naming the utterances ``src`` has no features for."""
    from parastyle.fileio import read_kv, write_kv
    import shutil
    src, dst = Path(src), Path(dst)
    utts = DataDir(dst).utts
    for name in FEATURE_TABLES:
        p = src / name
        if not p.is_file():
            raise DataError(f"{p}: file not found (extract the features of {src} first)")
        table = read_kv(p)
        missing = [u for u in utts if u not in table]
        if missing:
            raise DataError(f"{dst}: {len(missing)} utterance(s) have no line in {p}, e.g. {missing[:3]} "
                            f"(every fold set must be a subset of {src})")
        if name == "feats.scp":
            for extra in FEATURE_FILES:
                if (src / extra).is_file():
                    shutil.copy2(src / extra, dst / f".{extra}.tmp")
                    (dst / f".{extra}.tmp").replace(dst / extra)
                else:                       # a record left from an earlier attach would describe other arks
                    (dst / extra).unlink(missing_ok=True)
        write_kv(dst / name, {u: table[u] for u in utts})
    return len(utts)
