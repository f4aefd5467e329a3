#!/usr/bin/env python3
"""Prepare IEMOCAP for 4-class emotion recognition with leave-one-session-out folds (local/README.md).

Reads, for sessions 1-5 of ``<root>`` (the IEMOCAP_full_release directory):
  ``Session<n>/dialog/EmoEvaluation/<dialog>.txt``: lines ``[start - end]\\t<utt>\\t<emo>\\t[v, a, d]``
  ``Session<n>/dialog/transcriptions/<dialog>.txt``: lines ``<utt> [start-end]: text``
  ``Session<n>/sentences/wav/<dialog>/<utt>.wav``
Keeps the standard 4 classes: neutral (neu), happy (hap + exc merged), angry (ang), sad (sad); every
other label (fru, sur, fea, dis, oth, xxx) is left out and counted per label in the report. The
speaker of ``Ses01F_impro01_M000`` is session 1's male actor (the letter before the turn number),
named ``Ses01M``; utterance ids are ``<speaker>-<utt>``.

Writes ``<out>/`` (wav.scp, utt2spk, spk2utt, text, utt2emotion, utt2gender), ``<lang>/emotion.txt``,
``<lang>/gender.txt`` and, per fold n (test = session n), the utterance lists
``<folds>/fold<n>/{train,dev,test}.list`` where dev is a seeded 10% of the training speakers'
utterances (per speaker) and train the rest.
"""
import argparse
import random
import re
import sys
from collections import Counter
from pathlib import Path

from parastyle.fileio import DataError, write_kv, write_list

EMOTIONS = {"neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad"}
OTHER = {"fru", "sur", "fea", "dis", "oth", "xxx"}
UTT_RE = re.compile(r"^Ses0([1-5])[FM]_[A-Za-z0-9_]+_([FM])[A-Za-z0-9]*\d{3}$")
LABEL_RE = re.compile(r"^\[(\d+(?:\.\d+)?) - (\d+(?:\.\d+)?)\]\t(\S+)\t(\S+)\t\[[^\]]*\]$")
TRANS_RE = re.compile(r"^(\S+) \[[\d.]+-[\d.]+\]: ?(.*)$")


def speaker_of(utt: str, where: str) -> tuple:
    m = UTT_RE.match(utt)
    if not m:
        raise DataError(f"{where}: utterance id {utt!r} is not of the form Ses0<n><F|M>_<dialog>_<F|M><nnn>")
    return f"Ses0{m.group(1)}{m.group(2)}", "female" if m.group(2) == "F" else "male", int(m.group(1))


def read_labels(path: Path, dropped: Counter) -> dict:
    out = {}
    with open(path, encoding="utf-8", errors="strict") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.startswith("["):
                continue            # header, annotator lines (C-E1:, A-F2: ...) and blanks
            m = LABEL_RE.match(line)
            if not m:
                raise DataError(f"{path}:{n}: expected '[start - end]<TAB>utt<TAB>emo<TAB>[v, a, d]', got {line!r}")
            utt, emo = m.group(3), m.group(4)
            if emo in EMOTIONS:
                out[utt] = EMOTIONS[emo]
            elif emo in OTHER:
                dropped[emo] += 1
            else:
                raise DataError(f"{path}:{n}: utterance {utt!r} has unknown emotion {emo!r} "
                                f"(expected one of {sorted(EMOTIONS) + sorted(OTHER)})")
    return out


def read_transcripts(path: Path, skipped: Counter) -> dict:
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            m = TRANS_RE.match(line)
            if m and UTT_RE.match(m.group(1)):
                out[m.group(1)] = " ".join(m.group(2).split())
            elif line.strip():
                skipped[str(path.name)] += 1   # e.g. turns of the other actor without timing (MXX, FXX)
    return out


def prepare(root: Path, out: Path, lang: Path, folds: Path, seed: int = 0) -> dict:
    wav, utt2spk, text, emo, gender, session = {}, {}, {}, {}, {}, {}
    dropped, skipped = Counter(), Counter()
    for s in range(1, 6):
        sdir = root / f"Session{s}"
        label_dir = sdir / "dialog" / "EmoEvaluation"
        if not label_dir.is_dir():
            raise DataError(f"{label_dir}: not found (expected the IEMOCAP_full_release layout)")
        for lab_file in sorted(label_dir.glob("*.txt")):
            dialog = lab_file.stem
            labels = read_labels(lab_file, dropped)
            if not labels:
                continue
            trans_file = sdir / "dialog" / "transcriptions" / f"{dialog}.txt"
            if not trans_file.is_file():
                raise DataError(f"{trans_file}: transcript file of dialog {dialog} not found")
            trans = read_transcripts(trans_file, skipped)
            for utt, e in labels.items():
                spk, g, sess = speaker_of(utt, str(lab_file))
                if sess != s:
                    raise DataError(f"{lab_file}: utterance {utt!r} is not from session {s}")
                w = sdir / "sentences" / "wav" / dialog / f"{utt}.wav"
                if not w.is_file():
                    raise DataError(f"{lab_file}: utterance {utt!r} has no audio file {w}")
                if utt not in trans:
                    raise DataError(f"{trans_file}: no transcript line for utterance {utt!r} (labelled in {lab_file})")
                key = f"{spk}-{utt}"
                wav[key], utt2spk[key], text[key], emo[key], gender[key], session[key] = (
                    str(w.resolve()), spk, trans[utt], e, g, s)
    if not wav:
        raise DataError(f"{root}: no utterance with one of the 4 emotion classes found")
    out.mkdir(parents=True, exist_ok=True)
    write_kv(out / "wav.scp", wav)
    write_kv(out / "utt2spk", utt2spk)
    spk2utt = {}
    for u, s in sorted(utt2spk.items()):
        spk2utt.setdefault(s, []).append(u)
    write_kv(out / "spk2utt", {s: " ".join(us) for s, us in spk2utt.items()})
    write_kv(out / "text", text)
    write_kv(out / "utt2emotion", emo)
    write_kv(out / "utt2gender", gender)
    lang.mkdir(parents=True, exist_ok=True)
    write_list(lang / "emotion.txt", ["neutral", "happy", "angry", "sad"])
    write_list(lang / "gender.txt", ["female", "male"])
    rng = random.Random(seed)
    for n in range(1, 6):
        test = sorted(u for u in wav if session[u] == n)
        train, dev = [], []
        for spk in sorted(spk2utt):
            if int(spk[4]) == n:
                continue
            utts = list(spk2utt[spk])
            rng.shuffle(utts)
            k = max(1, round(0.1 * len(utts)))
            dev.extend(utts[:k])
            train.extend(utts[k:])
        d = folds / f"fold{n}"
        d.mkdir(parents=True, exist_ok=True)
        write_list(d / "train.list", sorted(train))
        write_list(d / "dev.list", sorted(dev))
        write_list(d / "test.list", test)
    return {"utterances": len(wav), "classes": dict(Counter(emo.values())), "dropped": dict(dropped),
            "skipped_transcript_lines": sum(skipped.values())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="IEMOCAP_full_release (holds Session1..Session5)")
    p.add_argument("--out", required=True)
    p.add_argument("--lang", required=True)
    p.add_argument("--folds", required=True, help="directory for fold<n>/{train,dev,test}.list")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        rep = prepare(Path(args.root), Path(args.out), Path(args.lang), Path(args.folds), args.seed)
    except DataError as e:
        print(f"prepare_iemocap: error: {e}", file=sys.stderr)
        return 1
    print(f"prepare_iemocap: {rep['utterances']} utterances {rep['classes']}; left out (other labels): "
          f"{rep['dropped']}; transcript lines without an utterance id: {rep['skipped_transcript_lines']}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
