#!/usr/bin/env python3
"""ParaSpeechCaps / ParaSpeechCLAP evaluation parquet files -> Kaldi data dirs.

    local/prepare_paraspeechcaps.py --audio_root AUDIO --out data \\
        --intrinsic_train DIR --situational_train DIR \\
        [--eval_intrinsic DIR --eval_situational DIR --eval_combined DIR] \\
        [--class_labels conf/classification_labels.json] [--situational_upsample 0] [--skip_missing]

Each DIR is a local copy of a Hugging Face dataset repository: parquet files named
``<split>-NNNNN-of-NNNNN.parquet`` (usually under ``data/``); the split name is taken from the
file name. Columns read: ``source``, ``relative_audio_path``, ``text_description`` (list of
captions), ``intrinsic_tags``, ``situational_tags`` (lists), ``duration``; audio is
``<audio_root>/<source>/<relative_audio_path>``.

Output (``--out``):

* ``train_intrinsic``, ``train_situational`` — the training split(s) of each training dataset
  (``--train_splits``, default every split whose name starts with ``train``); ``utt2tags`` holds
  that dataset's tag family. ``dev_<variant>`` from a split named ``dev``/``validation`` if present.
* ``train_combined`` — the union, the situational utterances repeated ``K`` times (ids suffixed
  ``-rep<k>``), ``K = --situational_upsample`` or, when 0, ``round(N_intrinsic / N_situational)``
  (at least 1); ``utt2tags`` holds both families.
* ``eval_<variant>_<split>`` for every split of an evaluation dataset; a split named
  ``classification_<attribute>`` (every attribute of every evaluation set: pitch, clarity, ...,
  intrinsic and situational) also gets ``utt2<attribute>``: the row's ``classification_tag``
  column when present (``label`` in older copies), else the one candidate style (``--class_labels`` JSON ``{attribute: [styles]}``)
  found among the row's tags (none or several is an error naming the row).
* ``lang/tags.txt``, ``lang/intrinsic_tags.txt``, ``lang/situational_tags.txt`` and
  ``lang/<attribute>.txt`` (candidate styles of each classification split).

Per utterance: ``wav.scp``, ``utt2spk`` (the ``speaker_id``/``speakerid`` column when present,
else the utterance itself), ``spk2utt``, ``utt2caption`` (the first caption of
``text_description``; every caption of a clip with several in ``captions.json``, from which the
``clap`` dataset draws one per draw in training; ``--all_captions`` makes one utterance per caption, ids suffixed ``-c<k>``),
``utt2tags`` (the toolkit's format: space-separated tags, see parastyle/data/datadir.py), ``utt2dur``.
Tag names: every tag and label is made one token by :func:`norm_tag` (runs of whitespace -> one
``_``, e.g. ``fast talking`` -> ``fast_talking``); the same names are written to ``lang/*tags.txt``,
``lang/<attribute>.txt`` and the keys of ``lang/tag_paraphrases.json`` (local/make_tag_paraphrases.py
applies the same function to a hand-written ``conf/tag_paraphrases.json``), so they all match.
Utterance id: ``<source>-<relative path without extension, '/' -> '-'>``.

Rows whose audio file is missing raise an error listing them; with ``--skip_missing`` they are
left out and counted in the log. Every data dir is written to ``<name>.tmp`` and renamed.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from parastyle.fileio import DataError, write_kv, write_list

logger = logging.getLogger("prepare_paraspeechcaps")

REQUIRED = ["source", "relative_audio_path", "text_description", "intrinsic_tags", "situational_tags", "duration"]
SPLIT_RE = re.compile(r"^(?P<split>.+?)-\d{5}-of-\d{5}\.parquet$")


def norm_tag(t: str) -> str:
    """A tag or label as one token: surrounding whitespace dropped, inner runs of whitespace -> ``_``."""
    return "_".join(str(t).split())


def utt_id(source: str, rel: str) -> str:
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", rel)
    uid = f"{source}-{stem}".replace("/", "-")
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", uid)


def list_splits(dataset_dir: Path) -> Dict[str, List[Path]]:
    """``{split: [parquet files]}`` of a local dataset copy."""
    if not dataset_dir.is_dir():
        raise DataError(f"{dataset_dir}: dataset directory not found")
    out: Dict[str, List[Path]] = defaultdict(list)
    for p in sorted(dataset_dir.rglob("*.parquet")):
        m = SPLIT_RE.match(p.name)
        out[m.group("split") if m else p.stem].append(p)
    if not out:
        raise DataError(f"{dataset_dir}: no .parquet file (expected <split>-00000-of-00001.parquet files)")
    return dict(out)


def read_rows(files: Iterable[Path]) -> List[dict]:
    import pyarrow.parquet as pq

    rows = []
    for f in files:
        table = pq.read_table(f)
        missing = [c for c in REQUIRED if c not in table.column_names]
        if missing:
            raise DataError(f"{f}: missing column(s) {missing}; found {table.column_names}")
        for i, row in enumerate(table.to_pylist()):
            row["_where"] = f"{f}: row {i}"
            rows.append(row)
    return rows


class Utt:
    __slots__ = ("uid", "wav", "spk", "caption", "tags", "dur", "label", "captions")

    def __init__(self, uid, wav, spk, caption, tags, dur, label=None, captions=None):
        self.uid, self.wav, self.spk, self.caption, self.tags, self.dur, self.label = \
            uid, wav, spk, caption, tags, dur, label
        self.captions = list(captions) if captions else [caption]


def class_label(row: dict, where: str) -> Optional[str]:
    """The classification target of an evaluation row: column ``classification_tag`` (``label`` for
    older copies); None when the row has neither. A list must hold exactly one label."""
    value = row.get("classification_tag", row.get("label"))
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise DataError(f"{where}: classification_tag {value!r}: expected one label")
        value = value[0]
    if value is None or not str(value).strip():
        return None
    return str(value)


def rows_to_utts(rows: List[dict], audio_root: Path, tag_family: str, all_captions: bool,
                 skip_missing: bool, what: str) -> List[Utt]:
    """``tag_family``: "intrinsic", "situational" or "both"."""
    utts: List[Utt] = []
    missing: List[str] = []
    seen: Dict[str, str] = {}
    for row in rows:
        where = row["_where"]
        source, rel = row["source"], row["relative_audio_path"]
        if not source or not rel:
            raise DataError(f"{where}: empty source or relative_audio_path")
        wav = audio_root / source / rel
        if not wav.is_file():
            missing.append(str(wav))
            continue
        caps = row["text_description"]
        if isinstance(caps, str):
            caps = [caps]
        caps = [" ".join(str(c).split()) for c in (caps or []) if c and str(c).strip()]
        if not caps:
            raise DataError(f"{where}: no caption in text_description")
        tags: List[str] = []
        if tag_family in ("intrinsic", "both"):
            tags += [norm_tag(t) for t in (row["intrinsic_tags"] or [])]
        if tag_family in ("situational", "both"):
            tags += [norm_tag(t) for t in (row["situational_tags"] or [])]
        tags = list(dict.fromkeys(t for t in tags if t))
        try:
            dur = float(row["duration"])
        except (TypeError, ValueError):
            raise DataError(f"{where}: duration {row['duration']!r} is not a number") from None
        uid = utt_id(source, rel)
        if uid in seen:
            raise DataError(f"{where}: utterance id {uid!r} also made by {seen[uid]} (duplicate audio path)")
        seen[uid] = where
        spk_raw = row.get("speaker_id", row.get("speakerid"))
        spk = None
        if spk_raw not in (None, ""):
            spk = re.sub(r"[^A-Za-z0-9_.\-]", "_", f"{source}-{spk_raw}")
        chosen = list(enumerate(caps)) if all_captions else [(0, caps[0])]
        label = class_label(row, where)
        for k, cap in chosen:
            u = uid if not all_captions else f"{uid}-c{k}"
            utts.append(Utt(u, str(wav.resolve()), spk, cap, tags, dur, label,
                            captions=[cap] if all_captions else caps))
    if missing:
        msg = f"{what}: {len(missing)} audio file(s) not found, e.g. {missing[:3]}"
        if not skip_missing:
            raise DataError(msg + " (check --audio_root, or pass --skip_missing to leave them out)")
        logger.warning("%s; left out", msg)
    multi = sum(1 for r in rows if isinstance(r["text_description"], list) and len(r["text_description"]) > 1)
    if multi and not all_captions:
        logger.info("%s: %d row(s) have several captions: utt2caption holds the first, captions.json all of them "
                    "(the clap dataset draws one per draw in training; --all_captions expands them)", what, multi)
    return utts


def write_data_dir(out: Path, utts: List[Utt], factor: Optional[Tuple[str, Dict[str, str]]] = None) -> None:
    """Write a Kaldi data dir atomically (``<out>.tmp`` then rename)."""
    if not utts:
        raise DataError(f"{out}: no utterance to write")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # Kaldi wants speaker ids to be prefixes of utterance ids for sorting: when a speaker column
    # exists the utterance id is prefixed with it.
    by_utt = {}
    for u in utts:
        uid = u.uid if u.spk is None else (u.uid if u.uid.startswith(u.spk + "-") else f"{u.spk}-{u.uid}")
        by_utt[uid] = (u, u.spk or uid)
    write_kv(tmp / "wav.scp", {k: u.wav for k, (u, _) in by_utt.items()})
    write_kv(tmp / "utt2spk", {k: s for k, (_, s) in by_utt.items()})
    spk2utt: Dict[str, List[str]] = defaultdict(list)
    for k in sorted(by_utt, key=lambda x: x.encode()):
        spk2utt[by_utt[k][1]].append(k)
    write_kv(tmp / "spk2utt", {s: " ".join(v) for s, v in spk2utt.items()})
    write_kv(tmp / "utt2caption", {k: u.caption for k, (u, _) in by_utt.items()})
    several = {k: u.captions for k, (u, _) in sorted(by_utt.items(), key=lambda kv: kv[0].encode())
               if len(u.captions) > 1}
    if several:   # every caption of clips with several (parastyle.data.caption_dataset draws one per draw)
        with open(tmp / "captions.json", "w", encoding="utf-8") as f:
            json.dump(several, f, indent=0, ensure_ascii=False)
            f.write("\n")
    write_kv(tmp / "utt2dur", {k: f"{u.dur:.3f}" for k, (u, _) in by_utt.items()})
    # utt2tags: space-separated tags (each already one token, see norm_tag); untagged clips have no line
    tagged = {k: " ".join(u.tags) for k, (u, _) in by_utt.items() if u.tags}
    if tagged:
        write_kv(tmp / "utt2tags", tagged)
    if len(tagged) < len(by_utt):
        logger.info("%s: %d of %d utterance(s) have no tag (no utt2tags line)", out, len(by_utt) - len(tagged),
                    len(by_utt))
    if factor is not None:
        name, labels = factor
        write_kv(tmp / f"utt2{name}", {k: labels[u.uid] for k, (u, _) in by_utt.items() if u.uid in labels})
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    logger.info("%s: %d utterances, %d speakers", out, len(by_utt), len(spk2utt))


def classification_labels(attribute: str, utts: List[Utt], candidates: Optional[List[str]],
                          what: str) -> Tuple[Dict[str, str], List[str]]:
    """``({utt: label}, vocabulary)`` of a classification split: the ``classification_tag`` column
    (vocabulary: the candidates of ``--class_labels`` when given, checked, else the labels found);
    without that column, the one candidate style found among each clip's tags."""
    given = [u for u in utts if u.label not in (None, "")]
    if given and len(given) != len(utts):
        bad = [u.uid for u in utts if u.label in (None, "")]
        raise DataError(f"{what}: {len(bad)} of {len(utts)} row(s) have no classification_tag, e.g. {bad[:3]}")
    if given:
        labels = {u.uid: norm_tag(u.label) for u in utts}
        vocab = sorted(set(labels.values()))
        if candidates:
            extra = sorted(set(vocab) - {norm_tag(c) for c in candidates})
            if extra:
                raise DataError(f"{what}: labels {extra} are not among the candidates {candidates} of {attribute!r}")
            vocab = [norm_tag(c) for c in candidates]
        return labels, vocab
    if not candidates:
        raise DataError(f"{what}: split has no 'classification_tag' column and attribute {attribute!r} has no candidate "
                        f"styles in --class_labels (JSON {{attribute: [styles]}})")
    cand = [norm_tag(c) for c in candidates]
    labels = {}
    for u in utts:
        found = [c for c in cand if c in u.tags]
        if len(found) != 1:
            raise DataError(f"{what}: utterance {u.uid}: expected exactly one of {cand} among its tags {u.tags}, "
                            f"found {found}")
        labels[u.uid] = found[0]
    return labels, cand


def auto_upsample(n_intrinsic: int, n_situational: int) -> int:
    return max(1, int(round(n_intrinsic / n_situational))) if n_situational else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--audio_root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--intrinsic_train", default=None)
    ap.add_argument("--situational_train", default=None)
    ap.add_argument("--eval_intrinsic", default=None)
    ap.add_argument("--eval_situational", default=None)
    ap.add_argument("--eval_combined", default=None)
    ap.add_argument("--train_splits", default=None, help="comma-separated (default: splits named train*)")
    ap.add_argument("--class_labels", default=None, help="JSON {attribute: [candidate styles]}")
    ap.add_argument("--situational_upsample", type=int, default=0, help="0 = round(N_intrinsic / N_situational)")
    ap.add_argument("--all_captions", action="store_true")
    ap.add_argument("--skip_missing", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        run(args)
    except DataError as e:
        logger.error("%s", e)
        return 1
    return 0


def run(args) -> None:
    audio_root, out = Path(args.audio_root), Path(args.out)
    if not audio_root.is_dir():
        raise DataError(f"{audio_root}: audio root not found (expected <audio_root>/<source>/<relative_audio_path>)")
    cands: Dict[str, List[str]] = {}
    if args.class_labels:
        p = Path(args.class_labels)
        try:
            cands = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"{p}: cannot read the candidate styles ({e})") from None
    train_splits = [s for s in args.train_splits.split(",") if s] if args.train_splits else None
    vocab: Dict[str, set] = {"intrinsic": set(), "situational": set()}
    train: Dict[str, List[Utt]] = {}
    train_rows: Dict[str, List[dict]] = {}
    for variant, path in (("intrinsic", args.intrinsic_train), ("situational", args.situational_train)):
        if not path:
            continue
        splits = list_splits(Path(path))
        names = train_splits or [s for s in splits if s.startswith("train")]
        if not names:
            raise DataError(f"{path}: no split named train* (found {sorted(splits)}); set --train_splits")
        rows = []
        for s in names:
            if s not in splits:
                raise DataError(f"{path}: split {s!r} not found (found {sorted(splits)})")
            rows += read_rows(splits[s])
        train_rows[variant] = rows
        train[variant] = rows_to_utts(rows, audio_root, variant, args.all_captions, args.skip_missing,
                                      f"{path} ({variant} train)")
        for u in train[variant]:
            vocab[variant].update(u.tags)
        write_data_dir(out / f"train_{variant}", train[variant])
        for dev in ("dev", "validation", "valid"):
            if dev in splits:
                utts = rows_to_utts(read_rows(splits[dev]), audio_root, variant, args.all_captions,
                                    args.skip_missing, f"{path} ({dev})")
                write_data_dir(out / f"dev_{variant}", utts)
                break
    if "intrinsic" in train and "situational" in train:
        k = args.situational_upsample or auto_upsample(len(train["intrinsic"]), len(train["situational"]))
        logger.info("combined: situational utterances repeated %d time(s)", k)
        # the union carries both tag families of every clip; a clip in both sets appears once
        merged: Dict[str, Utt] = {}
        for variant in ("intrinsic", "situational"):
            for u in rows_to_utts(train_rows[variant], audio_root, "both", args.all_captions, True,
                                  f"{variant} train (combined)"):
                merged.setdefault(u.uid, u)
        sit_ids = {u.uid for u in train["situational"]}
        combined = list(merged.values())
        for r in range(1, k):
            combined += [Utt(f"{u.uid}-rep{r}", u.wav, u.spk, u.caption, u.tags, u.dur, captions=u.captions)
                         for u in merged.values() if u.uid in sit_ids]
        write_data_dir(out / "train_combined", combined)

    lang = out / "lang"
    class_vocabs: Dict[str, List[str]] = {}
    for variant, path in (("intrinsic", args.eval_intrinsic), ("situational", args.eval_situational),
                          ("combined", args.eval_combined)):
        if not path:
            continue
        family = "both" if variant == "combined" else variant
        for split, files in sorted(list_splits(Path(path)).items()):
            what = f"{path} ({split})"
            utts = rows_to_utts(read_rows(files), audio_root, family, args.all_captions, args.skip_missing, what)
            name = f"eval_{variant}_{split}"
            if split.startswith("classification_"):
                attr = split[len("classification_"):]
                labels, cvocab = classification_labels(attr, utts, cands.get(attr), what)
                prev = class_vocabs.get(attr)
                class_vocabs[attr] = cvocab if prev is None else list(dict.fromkeys(prev + cvocab))
                write_data_dir(out / name, utts, (attr, labels))
            else:
                write_data_dir(out / name, utts)
    lang.mkdir(parents=True, exist_ok=True)
    for fam in ("intrinsic", "situational"):
        if vocab[fam]:
            write_list(lang / f"{fam}_tags.txt", sorted(vocab[fam]))
    if vocab["intrinsic"] or vocab["situational"]:
        write_list(lang / "tags.txt", sorted(vocab["intrinsic"] | vocab["situational"]))
    for attr, v in class_vocabs.items():
        write_list(lang / f"{attr}.txt", v)


if __name__ == "__main__":
    sys.exit(main())
