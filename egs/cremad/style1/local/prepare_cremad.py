#!/usr/bin/env python3
"""Prepare CREMA-D as a labelled Kaldi data directory (see local/README.md for the layout).

Reads ``<corpus>/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav`` and
``<corpus>/VideoDemographics.csv`` (ActorID,Age,Sex,Race,Ethnicity); writes ``<out>/``
(wav.scp, utt2spk, spk2utt, text, utt2emotion, utt2age, utt2gender, utt2language,
utt2caption) and the label vocabularies ``<lang>/<factor>.txt``.
"""
import csv
import re
import sys
from pathlib import Path

from parastyle.data.corpus_prep import AGE_GROUPS, DataError, Utterance, age_group, corpus_parser, run_prepare

EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
LEVELS = {"LO", "MD", "HI", "XX"}
SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
# The corpus's own label vocabularies (data/lang/<factor>.txt); local/label_map.yaml maps them
# onto a shared label set when corpora are mixed (egs/parameta/style1).
VOCABULARIES = {"emotion": ["angry", "disgust", "fear", "happy", "neutral", "sad"], "age": AGE_GROUPS,
                "gender": ["male", "female"], "language": ["english"]}
SEXES = {"Male": "male", "Female": "female"}
NAME_RE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.wav$")


def read_demographics(path: Path) -> dict:
    """ActorID -> {"age": group, "gender": label}; DataError naming the line on bad rows."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (CREMA-D ships it at the corpus root)")
    actors = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"ActorID", "Age", "Sex"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}:1: header lacks column(s) {sorted(missing)}; "
                            f"expected ActorID,Age,Sex,Race,Ethnicity")
        for row in reader:
            line = reader.line_num
            actor, age, sex = (row.get(k) for k in ("ActorID", "Age", "Sex"))
            if None in (actor, age, sex) or None in row:
                raise DataError(f"{path}:{line}: expected {len(reader.fieldnames)} comma-separated fields")
            actor, age, sex = actor.strip(), age.strip(), sex.strip()
            if not re.fullmatch(r"\d{4}", actor):
                raise DataError(f"{path}:{line}: ActorID {actor!r} is not a 4-digit id")
            if not age.isdigit():
                raise DataError(f"{path}:{line}: Age {age!r} of actor {actor} is not a whole number")
            if sex not in SEXES:
                raise DataError(f"{path}:{line}: Sex {sex!r} of actor {actor} is not Male or Female")
            if actor in actors:
                raise DataError(f"{path}:{line}: actor {actor} listed twice")
            actors[actor] = {"age": age_group(int(age)), "gender": SEXES[sex]}
    return actors


def collect(corpus: Path, prefix: str) -> list:
    audio_dir = corpus / "AudioWAV"
    if not audio_dir.is_dir():
        raise DataError(f"{audio_dir}: directory not found (expected CREMA-D's AudioWAV/)")
    demographics_path = corpus / "VideoDemographics.csv"
    actors = read_demographics(demographics_path)
    utts, ignored = [], []
    for wav in sorted(audio_dir.iterdir()):
        if wav.suffix.lower() != ".wav":
            ignored.append(wav.name)
            continue
        m = NAME_RE.match(wav.name)
        if not m:
            raise DataError(f"{wav}: file name is not <actor>_<sentence>_<emotion>_<level>.wav "
                            f"(e.g. 1001_DFA_ANG_XX.wav)")
        actor, sentence, emotion, level = m.groups()
        if emotion not in EMOTIONS:
            raise DataError(f"{wav}: unknown emotion code {emotion!r} (expected one of {sorted(EMOTIONS)})")
        if sentence not in SENTENCES:
            raise DataError(f"{wav}: unknown sentence code {sentence!r} (expected one of {sorted(SENTENCES)})")
        if level not in LEVELS:
            raise DataError(f"{wav}: unknown emotion level {level!r} (expected one of {sorted(LEVELS)})")
        if actor not in actors:
            raise DataError(f"{wav}: actor {actor} is not listed in {demographics_path}")
        spk = f"{prefix}_{actor}"
        factors = {"emotion": EMOTIONS[emotion], "language": "english", **actors[actor]}
        utts.append(Utterance(utt=f"{spk}-{wav.stem}", spk=spk, wav=wav, factors=factors,
                              text=SENTENCES[sentence], source=str(wav)))
    if ignored:
        print(f"{audio_dir}: ignored {len(ignored)} non-wav file(s): {' '.join(ignored[:10])}"
              + (" ..." if len(ignored) > 10 else ""), file=sys.stderr)
    if not utts:
        raise DataError(f"{audio_dir}: no .wav files found")
    return utts


def main(argv=None) -> int:
    parser = corpus_parser(__doc__, "CREMA-D root (holds AudioWAV/)", "cremad")
    args = parser.parse_args(argv)
    return run_prepare("prepare_cremad.py", args, lambda: collect(args.corpus.absolute(), args.prefix), VOCABULARIES)


if __name__ == "__main__":
    sys.exit(main())
