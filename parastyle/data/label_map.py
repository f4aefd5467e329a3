"""Mapping a corpus's own labels onto a shared label set, explicitly and with a report.

A corpus's data prep writes the corpus's own vocabularies (``data/lang/<factor>.txt``). To mix
corpora on one label set (ParaMETA's 7 emotions and 5 age groups, say), each corpus may carry a
``local/label_map.yaml``::

    emotion: {boredom: null, anger: angry, surprised: surprise}   # null = unknown
    age: null                                                      # drop the factor
    # factors and labels not listed are kept as they are

:func:`apply_label_map` rewrites a data directory with the mapping: a label mapped to ``null``
becomes unknown (its ``utt2<factor>`` line is removed, never a magic string); a label not listed
is kept. With a target vocabulary every resulting label must be in it, otherwise the error names
the corpus label and its count and asks for a ``label_map.yaml`` entry. The returned
:class:`MapReport` counts utterances per (source label -> target label | unknown).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from parastyle.data.datadir import copied_files, is_factor_file, read_tables, write_tables
from parastyle.fileio import DataError, PathLike, atomic_write, read_list, write_list

LabelMap = Dict[str, Optional[Dict[str, Optional[str]]]]


def load_label_map(path: PathLike) -> LabelMap:
    """Read and check a ``label_map.yaml``: ``{factor: {label: target | null} | null}``."""
    import yaml
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label map not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DataError(f"{path}: not valid YAML: {e}") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a mapping factor -> {{label: target or null}}, got {type(raw).__name__}")
    out: LabelMap = {}
    for factor, table in raw.items():
        if not isinstance(factor, str) or not is_factor_file(f"utt2{factor}"):
            raise DataError(f"{path}: {factor!r} is not a style factor name")
        if table is None:
            out[factor] = None
            continue
        if not isinstance(table, dict):
            raise DataError(f"{path}: {factor}: expected a mapping label -> target (or null), got {table!r}")
        entries: Dict[str, Optional[str]] = {}
        for src, dst in table.items():
            src = str(src)
            if dst is not None and (not isinstance(dst, (str, int)) or not str(dst).strip()
                                    or any(c.isspace() for c in str(dst))):
                raise DataError(f"{path}: {factor}.{src}: target must be one label or null, got {dst!r}")
            entries[src] = None if dst is None else str(dst)
        out[factor] = entries
    return out


@dataclass
class MapReport:
    """``counts[factor][(source, target or None)] = utterances``; ``dropped_factors``."""
    counts: Dict[str, Dict[Tuple[str, Optional[str]], int]] = field(default_factory=dict)
    dropped_factors: Dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        lines = []
        for factor, table in self.counts.items():
            parts = []
            for (src, dst), n in sorted(table.items()):
                if dst is None:
                    parts.append(f"{src} -> unknown ({n})")
                elif dst == src:
                    parts.append(f"{src} kept ({n})")
                else:
                    parts.append(f"{src} -> {dst} ({n})")
            mapped = sum(n for (s, d), n in table.items() if d is not None and d != s)
            dropped = sum(n for (_, d), n in table.items() if d is None)
            lines.append(f"{factor}: mapped {mapped}, unknown {dropped}, kept "
                         f"{sum(table.values()) - mapped - dropped}: " + "; ".join(parts))
        for factor, n in self.dropped_factors.items():
            lines.append(f"{factor}: factor dropped (label_map '{factor}: null'): {n} label(s) made unknown")
        return "\n".join(lines)


def apply_label_map(src: PathLike, dst: PathLike, label_map: LabelMap,
                    src_lang: Optional[PathLike] = None, target: Optional[Mapping[str, Sequence[str]]] = None,
                    recaption: bool = False, where: str = "label_map.yaml") -> MapReport:
    """Write data dir ``dst``: ``src`` with its factor labels mapped (see the module docstring).

    ``src_lang``: the corpus's vocabularies; a source label named in the map but absent from the
    corpus's vocabulary is an error (a typo would otherwise map nothing). ``target``:
    ``{factor: labels}`` that every mapped label must belong to (factors of ``src`` missing from
    ``target`` are an error unless mapped to null). ``recaption``: regenerate ``utt2caption``
    from the mapped factors (:func:`parastyle.data.corpus_prep.make_caption`).
    """
    src, dst = Path(src), Path(dst)
    tables = read_tables(src)
    report = MapReport()
    factors = [n[len("utt2"):] for n in tables if n.startswith("utt2") and is_factor_file(n)]
    for factor in label_map:
        if factor not in factors:
            raise DataError(f"{where}: factor {factor!r} is mapped but {src} has no utt2{factor}")
    for factor in factors:
        name = f"utt2{factor}"
        table = tables[name]
        fmap = label_map.get(factor, {})
        if factor in label_map and fmap is None:
            report.dropped_factors[factor] = len(table)
            del tables[name]
            continue
        fmap = fmap or {}
        if src_lang is not None and (Path(src_lang) / f"{factor}.txt").is_file():
            vocab = set(read_list(Path(src_lang) / f"{factor}.txt"))
            unknown = sorted(set(fmap) - vocab)
            if unknown:
                raise DataError(f"{where}: {factor} label(s) {unknown} are not in the corpus's vocabulary "
                                f"{Path(src_lang) / (factor + '.txt')} {sorted(vocab)}")
        counts: Dict[Tuple[str, Optional[str]], int] = {}
        out = {}
        for utt, label in table.items():
            new = fmap.get(label, label)
            counts[(label, new)] = counts.get((label, new), 0) + 1
            if new is not None:
                out[utt] = new
        if target is not None:
            if factor not in target and out:
                raise DataError(f"{src}: factor {factor!r} is not in the target label sets {sorted(target)}; "
                                f"map it to null in {where} ('{factor}: null') to drop it")
            if factor in target:
                outside: Dict[str, int] = {}
                for (s, d), n in counts.items():
                    if d is not None and d not in target[factor]:
                        outside[s] = outside.get(s, 0) + n
                if outside:
                    raise DataError(f"{src}/utt2{factor}: label(s) {', '.join(f'{s!r} ({n} utt)' for s, n in sorted(outside.items()))} "
                                    f"are not in the target {factor} set {list(target[factor])}: map each to a target "
                                    f"label or to null (unknown) in {where}, e.g. '{factor}: {{{sorted(outside)[0]}: null}}'")
        report.counts[factor] = counts
        if out:
            tables[name] = out
        else:
            del tables[name]
    if recaption:
        from parastyle.data.corpus_prep import make_caption
        fac = {f: tables.get(f"utt2{f}", {}) for f in factors}
        tables["utt2caption"] = {u: make_caption({f: t[u] for f, t in fac.items() if u in t})
                                 for u in tables["utt2spk"]}
    write_tables(dst, tables, copy_files=copied_files(src))
    return report


def write_vocabularies(lang_dir: PathLike, vocabularies: Mapping[str, Sequence[str]]) -> None:
    for factor, labels in vocabularies.items():
        write_list(Path(lang_dir) / f"{factor}.txt", list(labels))


def load_label_sets(path: PathLike) -> Dict[str, List[str]]:
    """A YAML file ``{factor: [label, ...]}`` (a shared target label set, in index order)."""
    import yaml
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label sets not found")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict) or not all(isinstance(v, list) and v for v in raw.values()):
        raise DataError(f"{path}: expected factor -> non-empty list of labels")
    out = {}
    for f, labels in raw.items():
        labels = [str(x) for x in labels]
        if len(set(labels)) != len(labels):
            raise DataError(f"{path}: {f}: a label is listed twice")
        out[str(f)] = labels
    return out


def write_report(report: MapReport, path: PathLike) -> None:
    with atomic_write(path) as f:
        f.write(report.text() + "\n")
