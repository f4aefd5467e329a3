"""AISHELL-1 -> Kaldi data dirs ``<out>/{train,dev,test}`` for the poly1 recipe.

Corpus layout (as released, openslr 33)::

    <root>/data_aishell/wav/<set>/<spk>/<utt>.wav          set in train, dev, test; spk = S0002; utt = BAC009S0002W0122
    <root>/data_aishell/transcript/aishell_transcript_v0.8.txt   "<utt> 而 对 楼市 成交 ..." (word-segmented)
    <root>/resource_aishell/speaker.info                   "0002 F" (speaker number, M or F)

Written per set: ``wav.scp``, ``text`` (the transcript with the word spaces removed: characters),
``utt2spk``, ``spk2utt``, ``utt2gender`` (female / male), ``utt2language`` (cmn); utterance ids are
``<spk>-<utt>`` so that speakers are prefixes. Label vocabularies: ``<lang>/gender.txt``,
``<lang>/language.txt``. A wav without a transcript line is left out and counted (AISHELL-1 ships a
few); a speaker missing from speaker.info has no utt2gender lines (unknown), counted; a malformed
line is an error naming the file and line.

    python local/prepare_aishell.py --root /corpora/aishell --out data --lang_dir data/lang
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from parastyle.data.datadir import spk2utt_from_utt2spk
from parastyle.fileio import DataError, write_kv, write_list

SETS = ("train", "dev", "test")
GENDER = {"F": "female", "M": "male"}


def read_transcripts(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: AISHELL-1 transcript not found")
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.strip().split()
            if not parts:
                continue
            if len(parts) < 2:
                raise DataError(f"{path}:{n}: expected '<utt> <words...>', got {line.strip()!r}")
            if parts[0] in out:
                raise DataError(f"{path}:{n}: utterance {parts[0]!r} transcribed twice")
            out[parts[0]] = "".join(parts[1:])
    return out


def read_speaker_info(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: AISHELL-1 speaker.info not found")
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in GENDER:
                raise DataError(f"{path}:{n}: expected '<speaker number> M|F', got {line.strip()!r}")
            out["S" + parts[0]] = GENDER[parts[1]]
    return out


def prepare(root, out, lang_dir) -> dict:
    root, out, lang_dir = Path(root), Path(out), Path(lang_dir)
    texts = read_transcripts(root / "data_aishell" / "transcript" / "aishell_transcript_v0.8.txt")
    genders = read_speaker_info(root / "resource_aishell" / "speaker.info")
    report = {}
    for s in SETS:
        wav_dir = root / "data_aishell" / "wav" / s
        if not wav_dir.is_dir():
            raise DataError(f"{wav_dir}: not found (expected data_aishell/wav/{{train,dev,test}}/<spk>/<utt>.wav)")
        wav, text, u2s, u2g = {}, {}, {}, {}
        no_text, no_gender = [], set()
        for p in sorted(wav_dir.glob("*/*.wav")):
            spk, name = p.parent.name, p.stem
            if spk not in name:
                raise DataError(f"{p}: utterance {name!r} is not of speaker directory {spk!r}")
            if name not in texts:
                no_text.append(name)
                continue
            utt = f"{spk}-{name}"
            wav[utt], text[utt], u2s[utt] = str(p.resolve()), texts[name], spk
            if spk in genders:
                u2g[utt] = genders[spk]
            else:
                no_gender.add(spk)
        if not wav:
            raise DataError(f"{wav_dir}: no transcribed wav")
        d = out / s
        d.mkdir(parents=True, exist_ok=True)
        write_kv(d / "wav.scp", wav)
        write_kv(d / "text", text)
        write_kv(d / "utt2spk", u2s)
        write_kv(d / "spk2utt", {k: " ".join(v) for k, v in spk2utt_from_utt2spk(u2s).items()})
        write_kv(d / "utt2language", {u: "cmn" for u in wav})
        if u2g:
            write_kv(d / "utt2gender", u2g)
        report[s] = {"utts": len(wav), "speakers": len(set(u2s.values())), "no_transcript": len(no_text),
                     "speakers_without_gender": sorted(no_gender)}
        print(f"prepare_aishell: {s}: {len(wav)} utterances of {len(set(u2s.values()))} speakers; "
              f"{len(no_text)} wav(s) without transcript left out (e.g. {no_text[:3]}); "
              f"{len(no_gender)} speaker(s) without gender", file=sys.stderr)
    lang_dir.mkdir(parents=True, exist_ok=True)
    write_list(lang_dir / "gender.txt", ["female", "male"])
    write_list(lang_dir / "language.txt", ["cmn"])
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True)
    p.add_argument("--out", default="data")
    p.add_argument("--lang_dir", default="data/lang")
    a = p.parse_args(argv)
    try:
        prepare(a.root, a.out, a.lang_dir)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
