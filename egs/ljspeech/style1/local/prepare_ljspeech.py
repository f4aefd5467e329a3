#!/usr/bin/env python3
"""Prepare LJSpeech 1.1 as a labelled Kaldi data directory.

Reads ``<corpus>/metadata.csv`` (``<id>|<transcription>|<normalized transcription>``, no
header, no quoting) and ``<corpus>/wavs/<id>.wav``. Writes ``<out>/`` (wav.scp, utt2spk,
spk2utt, text from the normalized column, utt2gender, utt2language, utt2caption, and with
``--assume_neutral_adult true`` utt2emotion=neutral and utt2age=adult) and the label
vocabularies ``<lang>/<factor>.txt``.
"""
import re
import sys
from pathlib import Path

from parastyle.data.corpus_prep import DataError, Utterance, corpus_parser, run_prepare

ID_RE = re.compile(r"^LJ\d{3}-\d{4}$")


# The corpus's own label vocabularies (data/lang/<factor>.txt); emotion and age only with
# --assume_neutral_adult. local/label_map.yaml maps them onto a shared label set when corpora are mixed.
def vocabularies(assume_neutral_adult: bool) -> dict:
    vocab = {"gender": ["female"], "language": ["english"]}
    if assume_neutral_adult:
        vocab.update(emotion=["neutral"], age=["adult"])
    return vocab


def collect(corpus: Path, prefix: str, assume_neutral_adult: bool) -> list:
    metadata = corpus / "metadata.csv"
    if not metadata.is_file():
        raise DataError(f"{metadata}: file not found (expected LJSpeech-1.1/metadata.csv)")
    factors = {"gender": "female", "language": "english"}
    if assume_neutral_adult:
        factors.update(emotion="neutral", age="adult")
    spk = f"{prefix}_lj"
    utts, first_line = [], {}
    with open(metadata, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            fields = line.split("|")
            if len(fields) != 3:
                raise DataError(f"{metadata}:{n}: expected 3 '|'-separated fields "
                                f"(id|transcription|normalized transcription), got {len(fields)}")
            utt_id, raw_text, norm_text = (s.strip() for s in fields)
            if not ID_RE.match(utt_id):
                raise DataError(f"{metadata}:{n}: id {utt_id!r} is not LJnnn-nnnn")
            if utt_id in first_line:
                raise DataError(f"{metadata}:{n}: id {utt_id} already on line {first_line[utt_id]}")
            first_line[utt_id] = n
            text = norm_text or raw_text
            if not text:
                raise DataError(f"{metadata}:{n}: {utt_id} has an empty transcription")
            wav = corpus / "wavs" / f"{utt_id}.wav"
            if not wav.is_file():
                raise DataError(f"{metadata}:{n}: {utt_id} is listed but {wav} does not exist")
            utts.append(Utterance(utt=f"{spk}-{utt_id}", spk=spk, wav=wav, factors=dict(factors),
                                  text=text, source=f"{metadata}:{n}"))
    if not utts:
        raise DataError(f"{metadata}: no utterances")
    return utts


def str2bool(value: str) -> bool:
    if value not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return value == "true"


def main(argv=None) -> int:
    parser = corpus_parser(__doc__, "LJSpeech-1.1 root (holds metadata.csv)", "ljspeech")
    parser.add_argument("--assume_neutral_adult", type=str2bool, default=True,
                        help="label every clip emotion=neutral and age=adult (a recipe choice: "
                             "the corpus does not annotate them)")
    args = parser.parse_args(argv)
    return run_prepare("prepare_ljspeech.py", args, lambda: collect(args.corpus.absolute(), args.prefix, args.assume_neutral_adult),
                       vocabularies(args.assume_neutral_adult))


if __name__ == "__main__":
    sys.exit(main())
