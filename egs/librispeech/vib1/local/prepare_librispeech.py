#!/usr/bin/env python3
"""Prepare LibriSpeech subsets as Kaldi data directories (see local/README.md).

Reads ``<root>/<subset>/<spk>/<chapter>/<spk>-<chapter>-<nnnn>.flac``, the chapter transcripts
``<spk>-<chapter>.trans.txt`` (``<utt> TEXT IN CAPITALS``) and ``<root>/SPEAKERS.TXT``
(``ID | SEX | SUBSET | MINUTES | NAME``; lines starting with ``;`` are comments; the name may
itself contain ``|``). Writes ``<out>/`` with wav.scp (absolute flac paths), utt2spk, spk2utt,
text and utt2gender, and ``<lang>/gender.txt``.

    python local/prepare_librispeech.py --root /data/LibriSpeech --subset train-clean-100 \\
        --out data/train --lang data/lang
"""
import argparse
import re
import sys
from pathlib import Path

from parastyle.fileio import DataError, write_kv, write_list

UTT_RE = re.compile(r"^(\d+)-(\d+)-(\d+)$")
SEXES = {"F": "female", "M": "male"}


def read_speakers(path: Path) -> dict:
    """SPEAKERS.TXT -> {speaker id: gender}; DataError naming the line on a malformed entry."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (LibriSpeech ships SPEAKERS.TXT at its root)")
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.startswith(";") or not line.strip():
                continue
            fields = [x.strip() for x in line.rstrip("\n").split("|", 4)]
            if len(fields) != 5:
                raise DataError(f"{path}:{n}: expected 'ID | SEX | SUBSET | MINUTES | NAME', got {line.strip()!r}")
            spk, sex = fields[0], fields[1]
            if not spk.isdigit():
                raise DataError(f"{path}:{n}: speaker id {spk!r} is not a number")
            if sex not in SEXES:
                raise DataError(f"{path}:{n}: SEX {sex!r} of speaker {spk} is not F or M")
            out[spk] = SEXES[sex]
    return out


def read_chapter(trans: Path) -> dict:
    """``<spk>-<chapter>.trans.txt`` -> {utt: TEXT}."""
    out = {}
    with open(trans, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(" ", 1)
            if len(parts) != 2 or not UTT_RE.match(parts[0]) or not parts[1].strip():
                raise DataError(f"{trans}:{n}: expected '<spk>-<chapter>-<nnnn> TRANSCRIPT', got {line.strip()!r}")
            out[parts[0]] = parts[1].strip()
    return out


def prepare(root: Path, subset: str, out: Path, lang: Path) -> int:
    sub = root / subset
    if not sub.is_dir():
        raise DataError(f"{sub}: subset directory not found")
    genders = read_speakers(root / "SPEAKERS.TXT")
    wav, utt2spk, text, utt2gender = {}, {}, {}, {}
    for trans in sorted(sub.glob("*/*/*.trans.txt")):
        spk, chapter = trans.parent.parent.name, trans.parent.name
        if trans.name != f"{spk}-{chapter}.trans.txt":
            raise DataError(f"{trans}: expected the name {spk}-{chapter}.trans.txt in {spk}/{chapter}/")
        for utt, words in read_chapter(trans).items():
            m = UTT_RE.match(utt)
            if (m.group(1), m.group(2)) != (spk, chapter):
                raise DataError(f"{trans}: utterance {utt!r} does not belong to speaker {spk}, chapter {chapter}")
            flac = trans.parent / f"{utt}.flac"
            if not flac.is_file():
                raise DataError(f"{trans}: utterance {utt!r} has no audio file {flac}")
            if spk not in genders:
                raise DataError(f"{root / 'SPEAKERS.TXT'}: speaker {spk} (utterance {utt}) is not listed")
            wav[utt], utt2spk[utt], text[utt], utt2gender[utt] = str(flac.resolve()), spk, words, genders[spk]
    flacs = {p.stem for p in sub.glob("*/*/*.flac")}
    untranscribed = sorted(flacs - set(wav))
    if untranscribed:
        raise DataError(f"{sub}: {len(untranscribed)} flac file(s) have no transcript line, e.g. {untranscribed[0]}")
    if not wav:
        raise DataError(f"{sub}: no <spk>/<chapter>/<spk>-<chapter>.trans.txt found")
    out.mkdir(parents=True, exist_ok=True)
    write_kv(out / "wav.scp", wav)
    write_kv(out / "utt2spk", utt2spk)
    spk2utt = {}
    for u, s in sorted(utt2spk.items()):
        spk2utt.setdefault(s, []).append(u)
    write_kv(out / "spk2utt", {s: " ".join(us) for s, us in spk2utt.items()})
    write_kv(out / "text", text)
    write_kv(out / "utt2gender", utt2gender)
    lang.mkdir(parents=True, exist_ok=True)
    write_list(lang / "gender.txt", ["female", "male"])
    return len(wav)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="the LibriSpeech directory (holds SPEAKERS.TXT and the subsets)")
    p.add_argument("--subset", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--lang", required=True)
    args = p.parse_args(argv)
    try:
        n = prepare(Path(args.root), args.subset, Path(args.out), Path(args.lang))
    except DataError as e:
        print(f"prepare_librispeech: error: {e}", file=sys.stderr)
        return 1
    print(f"prepare_librispeech: {args.subset}: {n} utterances -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
