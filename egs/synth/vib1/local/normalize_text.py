"""Normalise a Kaldi ``text`` file for character CTC: lower case, keep letters, digits, apostrophes, single spaces.

    python local/normalize_text.py data/all/text data/all/text.norm
"""
import re
import sys

from parastyle.fileio import DataError, read_kv, write_kv


def normalize(text: str) -> str:
    text = re.sub(r"[^a-z0-9' ]+", " ", text.lower())
    return " ".join(text.split())


def main(src: str, dst: str) -> None:
    out = {}
    for utt, text in read_kv(src).items():
        norm = normalize(text)
        if not norm:
            raise DataError(f"{src}: utterance {utt!r}: transcript {text!r} is empty after normalisation")
        out[utt] = norm
    write_kv(dst, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
