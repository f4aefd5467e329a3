"""Normalise a multilingual Kaldi ``text`` file: lower case, punctuation removed (Unicode categories P*
and S*), single spaces; letters of every script (accents, Chinese characters) are kept.

    python local/normalize_text.py data/all/text data/all/text.norm
"""
import sys
import unicodedata

from parastyle.fileio import DataError, read_kv, write_kv


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text.lower())
    kept = "".join(" " if unicodedata.category(c)[0] in "PSZC" and c != "'" else c for c in text)
    return " ".join(kept.split())


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
