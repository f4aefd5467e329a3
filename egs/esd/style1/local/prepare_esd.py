#!/usr/bin/env python3
"""Prepare ESD (Emotional Speech Dataset) as a labelled Kaldi data directory.

Layout (see local/README.md): ``<corpus>/<spk>/<spk>.txt`` (``<utt>\\t<text>\\t<emotion>``)
and ``<corpus>/<spk>/<Emotion>/{train,evaluation,test}/<spk>_<nnnnnn>.wav`` for the
speakers 0001-0020 and the emotions Neutral, Angry, Happy, Sad, Surprise. Writes ``<out>/``
(wav.scp, utt2spk, spk2utt, text, utt2emotion, utt2gender, utt2language, utt2caption) and
the label vocabularies ``<lang>/<factor>.txt``. Age is not annotated in ESD: no utt2age.
"""
import re
import sys
from pathlib import Path

from parastyle.data.corpus_prep import DataError, Utterance, corpus_parser, run_prepare

# Emotion folder -> (label, first and last utterance number of the emotion in every speaker).
EMOTION_FOLDERS = {
    "Neutral": ("neutral", 1, 350),
    "Angry": ("angry", 351, 700),
    "Happy": ("happy", 701, 1050),
    "Sad": ("sad", 1051, 1400),
    "Surprise": ("surprise", 1401, 1750),
}
SUBSETS = {"train", "evaluation", "test"}
# Third column of <spk>.txt: English names (English speakers) and the Mandarin names
# (Mandarin speakers) of the five emotions.
TRANSCRIPT_EMOTIONS = {
    "neutral": "neutral", "angry": "angry", "happy": "happy", "sad": "sad", "surprise": "surprise",
    "中立": "neutral", "生气": "angry", "快乐": "happy", "伤心": "sad", "惊喜": "surprise",
}
# The corpus's own label vocabularies (data/lang/<factor>.txt); local/label_map.yaml maps them
# onto a shared label set when corpora are mixed (egs/parameta/style1).
VOCABULARIES = {"emotion": ["neutral", "angry", "happy", "sad", "surprise"], "gender": ["male", "female"],
                "language": ["chinese", "english"]}
MALE_SPEAKERS = {"0004", "0005", "0006", "0008", "0010", "0011", "0012", "0013", "0014", "0020"}
UTT_RE = re.compile(r"^(\d{4})_(\d{6})$")
LENIENT_LINE_RE = re.compile(r"^(\d{4}_\d{6})\s+(.*\S)\s+(\S+)$")


def speaker_labels(spk: str) -> dict:
    number = int(spk)
    if not 1 <= number <= 20:
        raise ValueError(spk)
    return {"gender": "male" if spk in MALE_SPEAKERS else "female",
            "language": "chinese" if number <= 10 else "english"}


def emotion_of_number(number: int):
    for folder, (label, first, last) in EMOTION_FOLDERS.items():
        if first <= number <= last:
            return folder, label
    return None, None


def decode_transcript(path: Path, mandarin: bool) -> str:
    """Decode a transcript file whose encoding differs between speakers (see README)."""
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    candidates = ["utf-8-sig"] + (["gb18030"] if mandarin else ["cp1252", "latin-1"])
    for encoding in candidates:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DataError(f"{path}: cannot decode as any of {candidates}")


def read_transcript(path: Path, spk: str, log=sys.stderr) -> dict:
    """utt number -> (text, line number); DataError naming the line on a malformed line."""
    if not path.is_file():
        raise DataError(f"{path}: transcript file not found (expected <spk>/<spk>.txt)")
    entries, repaired = {}, []
    text = decode_transcript(path, mandarin=int(spk) <= 10)
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.rstrip().split("\t")
        if len(fields) == 3 and all(f.strip() for f in fields):
            utt, sentence, emotion = (f.strip() for f in fields)
        else:
            m = LENIENT_LINE_RE.match(line.strip())
            if not m or m.group(3).lower() not in TRANSCRIPT_EMOTIONS:
                raise DataError(f"{path}:{n}: expected '<utt>\\t<text>\\t<emotion>', got {line!r}")
            utt, sentence, emotion = m.groups()
            repaired.append(n)
        m = UTT_RE.match(utt)
        if not m or m.group(1) != spk:
            raise DataError(f"{path}:{n}: utterance id {utt!r} is not {spk}_<6 digits>")
        number = int(m.group(2))
        folder, label = emotion_of_number(number)
        if folder is None:
            raise DataError(f"{path}:{n}: utterance number {number} is outside 1-1750")
        said = TRANSCRIPT_EMOTIONS.get(emotion.lower())
        if said is None:
            raise DataError(f"{path}:{n}: unknown emotion {emotion!r} (expected one of "
                            f"{sorted(set(TRANSCRIPT_EMOTIONS))})")
        if said != label:
            raise DataError(f"{path}:{n}: emotion {emotion!r} disagrees with the utterance number "
                            f"{number}, which belongs to {folder}")
        if number in entries:
            raise DataError(f"{path}:{n}: utterance {utt} already listed on line {entries[number][1]}")
        entries[number] = (" ".join(sentence.split()), n)
    if repaired:
        print(f"{path}: {len(repaired)} line(s) without the two tab separators were read by "
              f"whitespace (lines {' '.join(map(str, repaired))})", file=log)
    return entries


def collect_speaker(spk_dir: Path, prefix: str) -> list:
    spk = spk_dir.name
    try:
        labels = speaker_labels(spk)
    except ValueError:
        raise DataError(f"{spk_dir}: speaker folder {spk!r} is not one of ESD's 0001-0020") from None
    transcript_path = spk_dir / f"{spk}.txt"
    transcript = read_transcript(transcript_path, spk)
    wavs = {}
    for emo_dir in sorted(p for p in spk_dir.iterdir() if p.is_dir()):
        if emo_dir.name not in EMOTION_FOLDERS:
            raise DataError(f"{emo_dir}: unknown emotion folder (expected one of {sorted(EMOTION_FOLDERS)})")
        for wav in sorted(emo_dir.rglob("*.wav")):
            rel = wav.relative_to(emo_dir).parts
            if len(rel) > 2 or (len(rel) == 2 and rel[0] not in SUBSETS):
                raise DataError(f"{wav}: expected {emo_dir.name}/<train|evaluation|test>/<utt>.wav")
            m = UTT_RE.match(wav.stem)
            if not m or m.group(1) != spk:
                raise DataError(f"{wav}: file name is not {spk}_<6 digits>.wav")
            number = int(m.group(2))
            folder, _ = emotion_of_number(number)
            if folder != emo_dir.name:
                raise DataError(f"{wav}: utterance number {number} belongs to {folder}, "
                                f"not to the folder {emo_dir.name}")
            if number in wavs:
                raise DataError(f"{wav}: utterance also found at {wavs[number]}")
            wavs[number] = wav
    for number, (_, line) in sorted(transcript.items()):
        if number not in wavs:
            raise DataError(f"{transcript_path}:{line}: utterance {spk}_{number:06d} is listed but "
                            f"its wav is not under {spk_dir}/<Emotion>/")
    spk_id = f"{prefix}_{spk}"
    utts = []
    for number, wav in sorted(wavs.items()):
        if number not in transcript:
            raise DataError(f"{wav}: no line for {wav.stem} in {transcript_path}")
        text, line = transcript[number]
        utts.append(Utterance(utt=f"{spk_id}-{wav.stem}", spk=spk_id, wav=wav,
                              factors={"emotion": emotion_of_number(number)[1], **labels},
                              text=text, source=f"{transcript_path}:{line}"))
    return utts


def collect(corpus: Path, prefix: str) -> list:
    if not corpus.is_dir():
        raise DataError(f"{corpus}: directory not found")
    spk_dirs = sorted(p for p in corpus.iterdir() if p.is_dir() and re.fullmatch(r"\d{4}", p.name))
    if not spk_dirs:
        raise DataError(f"{corpus}: no speaker folders 0001-0020 found (point the path at the folder "
                        f"that holds them, e.g. 'Emotion Speech Dataset/')")
    utts = []
    for spk_dir in spk_dirs:
        utts.extend(collect_speaker(spk_dir, prefix))
    return utts


def main(argv=None) -> int:
    parser = corpus_parser(__doc__, "ESD root (holds 0001/ ... 0020/)", "esd")
    args = parser.parse_args(argv)
    return run_prepare("prepare_esd.py", args, lambda: collect(args.corpus.absolute(), args.prefix), VOCABULARIES)


if __name__ == "__main__":
    sys.exit(main())
