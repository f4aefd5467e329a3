"""Text -> phones of Kaldi data dirs (espeak-ng through phonemizer) and the phone vocabulary.

    python -m parastyle.bin.make_phones --lang_dir data/lang [--build_vocab] [--lang en] [--no_lang_tag] \\
        data/train data/dev data/test

Writes ``<data>/phones`` (``<utt> <phone> ...``) for every data dir; with ``--build_vocab`` the
vocabulary of all the given dirs is written to ``<lang_dir>/phones.txt``, otherwise each
phone must be in the existing ``phones.txt`` (an unknown phone is an error naming the
utterance). The language of an utterance is its ``utt2language`` line, or ``--lang``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from parastyle.fileio import DataError
from parastyle.text.phonemes import PhoneVocab, phonemize_data_dir, write_phones

logger = logging.getLogger("make_phones")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="+", help="Kaldi data dirs with text (and utt2language)")
    ap.add_argument("--lang_dir", required=True, help="where phones.txt is read or (--build_vocab) written")
    ap.add_argument("--build_vocab", action="store_true", help="write <lang_dir>/phones.txt from these dirs")
    ap.add_argument("--lang", default=None, help="language of every utterance (default: utt2language)")
    ap.add_argument("--no_lang_tag", action="store_true", help="no <lang> symbol in front of each sequence")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        tables = {d: phonemize_data_dir(d, args.lang, tag_language=not args.no_lang_tag) for d in args.data}
        vocab_path = Path(args.lang_dir) / "phones.txt"
        if args.build_vocab:
            vocab = PhoneVocab.build(s for t in tables.values() for s in t.values())
            Path(args.lang_dir).mkdir(parents=True, exist_ok=True)
            vocab.write(vocab_path)
            logger.info("%s: %d symbols", vocab_path, len(vocab))
        else:
            vocab = PhoneVocab.read(vocab_path)
        for d, table in tables.items():
            for u, seq in table.items():
                vocab.encode(seq, utt=f"{d}:{u}")
            write_phones(Path(d) / "phones", table)
            logger.info("%s/phones: %d utterances", d, len(table))
    except DataError as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
