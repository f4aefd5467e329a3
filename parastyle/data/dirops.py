"""Operations on whole data directories: fix, subset, combine and split into jobs.

Every operation keeps all table files consistent (recordings follow their segments, speaker
files follow the speakers, ``spk2utt`` is regenerated) and writes its output atomically.
"""
from __future__ import annotations

import random as _random
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from parastyle.data.datadir import (ARK_RECORD, RECO_FILES, SPK_FILES, UTT_FULL_FILES, UTT_PARTIAL_FILES, Tables,
                                    copied_files, is_factor_file, read_tables, scan_table, subset_tables,
                                    table_file_names, value_check, write_tables)
from parastyle.fileio import DataError, PathLike, c_sort_key, read_kv, write_kv


def _check_distinct(dst: PathLike, srcs: Sequence[PathLike]) -> None:
    """Refuse to write an output directory over one of the inputs."""
    for src in srcs:
        if Path(dst).resolve() == Path(src).resolve():
            raise DataError(f"{dst}: the output directory must differ from the input {src}")


def _examples(ids: Sequence[str], k: int = 3) -> str:
    shown = ", ".join(list(ids)[:k])
    return shown + (", ..." if len(ids) > k else "")


# ----------------------------------------------------------------------------------------------
# fix
# ----------------------------------------------------------------------------------------------

@dataclass
class FixReport:
    """What :func:`fix_data_dir` changed: kept/total utterances, dropped utterances per reason,
    and other lines removed or repaired (per file)."""
    total: int
    kept: int
    dropped: Dict[str, List[str]] = field(default_factory=OrderedDict)
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"kept {self.kept} of {self.total} utterances"]
        for reason, utts in self.dropped.items():
            lines.append(f"dropped {len(utts)} utterance(s) {reason} (e.g. {_examples(utts)})")
        lines.extend(self.notes)
        return "\n".join(lines)


def fix_data_dir(src: PathLike, dst: Optional[PathLike] = None) -> FixReport:
    """Make a data directory valid by sorting its files and dropping what cannot be kept.

    Sorts every table; removes exact duplicate lines; drops utterances missing from a file
    that must cover all utterances (text, segments, feats.scp, utt2dur, utt2num_frames, or
    wav.scp / their segment's recording) or whose line there is invalid (e.g. a non-positive
    duration, end <= start); removes lines of other files naming unknown utterances,
    recordings or speakers, and lines with invalid values; regenerates spk2utt. A key repeated
    with *different* values cannot be fixed and raises DataError naming both lines.

    Writes to ``dst`` (a new directory) or, by default, rewrites ``src`` in place keeping the
    previous files in ``src/.backup/``. Returns a :class:`FixReport`.
    """
    src = Path(src)
    if not (src / "utt2spk").is_file():
        raise DataError(f"{src / 'utt2spk'}: file not found (every data directory needs utt2spk)")
    report = FixReport(total=0, kept=0)
    conflicts: List[str] = []
    tables: Tables = {}
    invalid: Dict[str, Dict[str, str]] = {}
    for name in table_file_names(src):
        t = scan_table(src / name)
        n_dup = 0
        for n, key, value, first in t.duplicates:
            if value != t.entries[key][1]:
                conflicts.append(f"{t.path}:{n}: key {key!r} repeated with a different value "
                                 f"({value!r}; line {first} has {t.entries[key][1]!r})")
            else:
                n_dup += 1
        if n_dup:
            report.notes.append(f"{name}: removed {n_dup} duplicate line(s)")
        for p in t.problems:
            if "not sorted" not in p and "duplicate key" not in p:
                report.notes.append(f"{name}: skipped or repaired: {p}")
        check = value_check(name)
        table = {}
        bad: Dict[str, str] = {}
        for key, (n, value) in t.entries.items():
            msg = check(value)
            if msg:
                bad[key] = f"{t.path}:{n}: {msg}"
            else:
                table[key] = value
        tables[name] = table
        invalid[name] = bad
    if conflicts:
        raise DataError(f"{src}: cannot fix conflicting duplicate keys:\n  " + "\n  ".join(conflicts))

    u2s = tables["utt2spk"]
    report.total = len(set(u2s) | set(invalid["utt2spk"]))
    if invalid["utt2spk"]:
        report.dropped["with an invalid utt2spk line"] = sorted(invalid["utt2spk"], key=c_sort_key)
    utts = set(u2s)

    def drop(reason: str, ids) -> None:
        ids = sorted(set(ids) & utts, key=c_sort_key)
        if ids:
            report.dropped.setdefault(reason, []).extend(ids)
            utts.difference_update(ids)

    for name in UTT_FULL_FILES:
        if name in tables:
            drop(f"with an invalid {name} line", invalid[name])
            drop(f"missing from {name}", utts - set(tables[name]))
    if "wav.scp" in tables:
        wav = tables["wav.scp"]
        if "segments" in tables:
            seg = tables["segments"]
            drop("whose segment's recording is not in wav.scp",
                 [u for u in utts if seg[u].split()[0] not in wav])
        else:
            drop("with an invalid wav.scp line", invalid["wav.scp"])
            drop("missing from wav.scp", utts - set(wav))

    fixed = subset_tables(tables, utts)
    for name in tables:
        if name == "spk2utt":
            continue
        removed = len(tables[name]) - len(fixed[name])
        if invalid[name] and name not in UTT_FULL_FILES and name not in ("utt2spk", "wav.scp"):
            report.notes.append(f"{name}: removed {len(invalid[name])} line(s) with an invalid value "
                                f"(e.g. {_examples(list(invalid[name].values()), 1)})")
        if removed:
            what = ("recording(s) no utterance uses" if name in RECO_FILES else
                    "speaker(s) without utterances" if name in SPK_FILES else
                    "line(s) of utterances not kept")
            report.notes.append(f"{name}: removed {removed} {what}")
    report.kept = len(utts)
    if not utts:
        raise DataError(f"{src}: no utterance left after fixing:\n{report.summary()}")
    in_place = dst is None or Path(dst).resolve() == src.resolve()
    write_tables(src if in_place else dst, fixed,
                 copy_files=() if in_place else copied_files(src), replace_dir=not in_place)
    return report


# ----------------------------------------------------------------------------------------------
# subset
# ----------------------------------------------------------------------------------------------

def select_utts(tables: Tables, utt_list: Optional[Sequence[str]] = None,
                spk_list: Optional[Sequence[str]] = None, first: Optional[int] = None,
                last: Optional[int] = None, random: Optional[int] = None, per_spk: bool = False,
                seed: int = 0, where: str = "") -> List[str]:
    """Choose utterances by exactly one criterion; ids that do not exist raise DataError.

    ``first``/``last``/``random`` N pick N utterances (C order, or a seeded random sample);
    with ``per_spk`` they pick up to N utterances of each speaker instead.
    """
    chosen = [x is not None for x in (utt_list, spk_list, first, last, random)]
    if sum(chosen) != 1:
        raise DataError("choose exactly one of --utt-list, --spk-list, --first, --last, --random")
    u2s = tables["utt2spk"]
    utts = sorted(u2s, key=c_sort_key)
    if utt_list is not None:
        unknown = [u for u in utt_list if u not in u2s]
        if unknown:
            raise DataError(f"{where}: {len(unknown)} utterance(s) of the list are not in utt2spk "
                            f"(e.g. {_examples(unknown)})")
        return sorted(set(utt_list), key=c_sort_key)
    if spk_list is not None:
        speakers = set(u2s.values())
        unknown = [s for s in spk_list if s not in speakers]
        if unknown:
            raise DataError(f"{where}: {len(unknown)} speaker(s) of the list are not in utt2spk "
                            f"(e.g. {_examples(unknown)})")
        wanted = set(spk_list)
        return [u for u in utts if u2s[u] in wanted]
    n = first if first is not None else last if last is not None else random
    if n is None or n <= 0:
        raise DataError(f"{where}: the number of utterances must be positive, got {n}")
    rng = _random.Random(seed)

    def pick(group: List[str]) -> List[str]:
        if first is not None:
            return group[:n]
        if last is not None:
            return group[-n:]
        return sorted(rng.sample(group, min(n, len(group))), key=c_sort_key)

    if per_spk:
        by_spk: Dict[str, List[str]] = {}
        for u in utts:
            by_spk.setdefault(u2s[u], []).append(u)
        out = [u for spk in sorted(by_spk, key=c_sort_key) for u in pick(by_spk[spk])]
        return sorted(out, key=c_sort_key)
    if n > len(utts):
        raise DataError(f"{where}: cannot take {n} utterances, the directory has only {len(utts)}")
    return pick(utts)


def subset_data_dir(src: PathLike, dst: PathLike, **criterion) -> int:
    """Write the subset of ``src`` chosen by :func:`select_utts` (keyword ``criterion``) to ``dst``.

    Returns the number of utterances written.
    """
    _check_distinct(dst, [src])
    tables = read_tables(src)
    utts = select_utts(tables, where=str(src), **criterion)
    if not utts:
        raise DataError(f"{src}: the subset is empty")
    write_tables(dst, subset_tables(tables, utts), copy_files=copied_files(src))
    return len(utts)


# ----------------------------------------------------------------------------------------------
# combine
# ----------------------------------------------------------------------------------------------

def _combined_feature_files(srcs: Sequence[Path], has_feats: bool, tmp: Path, notes: List[str]) -> List[Path]:
    """The front-end description (``feats_conf.yaml``, ``frame_shift``) and archive record (``feats_arks``)
    of a combination: carried when every input has them and they agree; features of different
    front-ends are never combined under one description (DataError naming both inputs)."""
    import yaml
    if not has_feats:
        return []
    out: List[Path] = []
    for name in ("feats_conf.yaml", "frame_shift"):
        present = [s for s in srcs if (s / name).is_file()]
        if not present:
            continue
        if len(present) < len(srcs):
            missing = [str(s) for s in srcs if s not in present]
            raise DataError(f"combine: {name} is in {present[0]} but not in {missing[0]}: the front-end of the "
                            f"latter's features is unknown; re-extract it with the same front-end before combining")
        values = [yaml.safe_load((s / name).read_text(encoding="utf-8")) for s in present]
        for s, v in zip(present[1:], values[1:]):
            if v != values[0]:
                raise DataError(f"combine: {present[0] / name} ({values[0]}) and {s / name} ({v}) differ: the "
                                f"inputs' features come from different front-ends; extract them with one")
        out.append(present[0] / name)
    records = [s / ARK_RECORD for s in srcs if (s / ARK_RECORD).is_file()]
    if records and len(records) == len(srcs):
        merged: Dict[str, str] = {}
        for r in records:
            for ark, ident in read_kv(r).items():
                if merged.setdefault(ark, ident) != ident:
                    raise DataError(f"combine: {r}: archive {ark} is recorded as {ident!r}, another input "
                                    f"records {merged[ark]!r}: one of them is stale (re-extract it)")
        write_kv(tmp / ARK_RECORD, merged)
        out.append(tmp / ARK_RECORD)
    elif records:
        notes.append(f"{ARK_RECORD}: present in only {len(records)} of {len(srcs)} inputs; not written")
    return out


def combine_data_dirs(dst: PathLike, srcs: Sequence[PathLike], lang_dir: Optional[PathLike] = None) -> List[str]:
    """Combine data directories into ``dst``; return notes on files not written.

    Utterance ids must be unique across inputs (DataError names both directories). Factor,
    caption and tag files present in only some inputs keep their lines (the other inputs'
    utterances have unknown labels). Files that must cover every utterance (text, feats.scp,
    utt2dur, utt2num_frames) are written only when every input has them. If some inputs have
    ``segments`` and others not, the latter get one segment per recording from ``utt2dur``.
    With ``lang_dir``, label vocabularies there are extended by every new label (by name).
    """
    if len(srcs) < 1:
        raise DataError("combine: give at least one source directory")
    srcs = [Path(s) for s in srcs]
    _check_distinct(dst, srcs)
    all_tables = [read_tables(s) for s in srcs]
    notes: List[str] = []
    owner: Dict[str, Path] = {}
    dups: List[str] = []
    for s, t in zip(srcs, all_tables):
        for utt in t["utt2spk"]:
            if utt in owner:
                dups.append(f"utterance {utt!r} is in both {owner[utt]} and {s}")
            else:
                owner[utt] = s
    if dups:
        raise DataError(f"combine: duplicate utterance ids across inputs ({len(dups)}):\n  " +
                        "\n  ".join(dups[:20]) + ("\n  ..." if len(dups) > 20 else ""))

    if any("segments" in t for t in all_tables):
        for s, t in zip(srcs, all_tables):
            if "segments" in t or "wav.scp" not in t:
                continue
            if "utt2dur" not in t:
                raise DataError(f"combine: {s} has no segments file while other inputs do, and no utt2dur "
                                f"to make whole-recording segments from")
            t["segments"] = {u: f"{u} 0 {t['utt2dur'][u]}" for u in t["utt2spk"]}

    names = sorted({n for t in all_tables for n in t if n != "spk2utt"})
    out: Tables = {}
    spk_owner: Dict[str, Path] = {}
    for s, t in zip(srcs, all_tables):
        for spk in set(t["utt2spk"].values()):
            if spk in spk_owner and spk_owner[spk] != s:
                notes.append(f"speaker {spk!r} appears in {spk_owner[spk]} and {s}: treated as one speaker")
            spk_owner.setdefault(spk, s)
    for name in names:
        having = [(s, t[name]) for s, t in zip(srcs, all_tables) if name in t]
        partial = is_factor_file(name) or name in UTT_PARTIAL_FILES
        if len(having) < len(srcs) and not partial and name != "wav.scp":
            notes.append(f"{name}: present in only {len(having)} of {len(srcs)} inputs; not written")
            continue
        merged: Dict[str, str] = {}
        where: Dict[str, Path] = {}
        for s, table in having:
            for key, value in table.items():
                if key in merged and merged[key] != value:
                    raise DataError(f"combine: {name} key {key!r} has value {merged[key]!r} in {where[key]} "
                                    f"but {value!r} in {s}")
                merged[key] = value
                where.setdefault(key, s)
        out[name] = merged
    with tempfile.TemporaryDirectory(prefix=".combine.") as tmp:
        carried = _combined_feature_files(srcs, "feats.scp" in out, Path(tmp), notes)
        write_tables(dst, out, copy_files=carried)
    if lang_dir is not None:
        from parastyle.data.vocab import write_label_vocabs
        write_label_vocabs(dst, lang_dir)
    return notes


# ----------------------------------------------------------------------------------------------
# split into jobs
# ----------------------------------------------------------------------------------------------

def contiguous_partition(sizes: Sequence[int], n: int) -> List[List[int]]:
    """Cut items ``0..len(sizes)-1`` (in order) into ``n`` non-empty contiguous groups of
    roughly equal total size: group k closes near the cumulative target ``k * total / n``.

    Requires ``n <= len(sizes)``.
    """
    if n > len(sizes):
        raise ValueError(f"cannot cut {len(sizes)} items into {n} non-empty groups")
    total = float(sum(sizes))
    groups: List[List[int]] = [[]]
    cum = 0.0
    for i, c in enumerate(sizes):
        cur = groups[-1]
        if cur and len(groups) < n:
            target = total * len(groups) / n
            remaining = len(sizes) - i
            forced = remaining == n - len(groups)
            if forced or abs(cum + c - target) > abs(cum - target):
                groups.append([])
        groups[-1].append(i)
        cum += c
    return groups


def split_data_dir(src: PathLike, num_jobs: int, per_utt: bool = False) -> List[Path]:
    """Split ``src`` into ``src/split<N>/<n>/`` (``split<N>utt`` with ``per_utt``), n = 1..N.

    By default each speaker's utterances stay in one job (speakers cut into contiguous groups of
    balanced utterance counts; there must be at least N speakers); with ``per_utt`` the
    utterances are cut into N contiguous blocks. The whole split directory is written under a
    temporary name and renamed into place.
    """
    import os
    import shutil

    src = Path(src)
    if num_jobs < 1:
        raise DataError(f"split: the number of jobs must be >= 1, got {num_jobs}")
    tables = read_tables(src)
    u2s = tables["utt2spk"]
    utts = sorted(u2s, key=c_sort_key)
    if per_utt:
        units = [[u] for u in utts]
    else:
        by_spk: Dict[str, List[str]] = {}
        for u in utts:
            by_spk.setdefault(u2s[u], []).append(u)
        units = [by_spk[s] for s in sorted(by_spk, key=c_sort_key)]
    if num_jobs > len(units):
        what = "utterances" if per_utt else "speakers"
        raise DataError(f"split: {src} has {len(units)} {what}, fewer than the {num_jobs} jobs requested"
                        + ("" if per_utt else " (use --per-utt or fewer jobs)"))
    groups = contiguous_partition([len(u) for u in units], num_jobs)
    name = f"split{num_jobs}{'utt' if per_utt else ''}"
    final = src / name
    tmp = src / f".{name}.tmp.{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        for k, group in enumerate(groups, 1):
            part = [u for i in group for u in units[i]]
            write_tables(tmp / str(k), subset_tables(tables, part), copy_files=copied_files(src))
        old = src / f".{name}.old.{os.getpid()}"
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return [final / str(k) for k in range(1, num_jobs + 1)]
