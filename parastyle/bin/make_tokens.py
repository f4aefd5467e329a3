"""Build the CTC token vocabulary ``<lang_dir>/tokens.txt`` from a training ``text`` file.

    python -m parastyle.bin.make_tokens --text data/train/text --lang_dir data/lang \\
        [--token_type char|bpe] [--vocab_size 500] [--bpe_type unigram|bpe] [--model_prefix bpe]

char (default): ``<blank>``, ``<space>``, then every character of the text (sorted).
bpe: a sentencepiece model ``<lang_dir>/<model_prefix>.model`` trained on the text; tokens are
``<blank>`` followed by its pieces.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from parastyle.fileio import DataError, read_kv
from parastyle.text import build_char_vocab, train_sentencepiece, write_tokens


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", required=True, help="Kaldi text file (utt transcript)")
    p.add_argument("--lang_dir", required=True)
    p.add_argument("--token_type", choices=["char", "bpe"], default="char")
    p.add_argument("--vocab_size", type=int, default=500)
    p.add_argument("--bpe_type", choices=["unigram", "bpe"], default="unigram")
    p.add_argument("--model_prefix", default="bpe")
    args = p.parse_args(argv)
    try:
        texts = read_kv(args.text, allow_empty_value=True)
        if not texts:
            raise DataError(f"{args.text}: no transcript")
        Path(args.lang_dir).mkdir(parents=True, exist_ok=True)
        if args.token_type == "char":
            tokens = build_char_vocab(texts)
        else:
            tokens = train_sentencepiece(texts, args.lang_dir, args.vocab_size, args.bpe_type, args.model_prefix)
        write_tokens(Path(args.lang_dir) / "tokens.txt", tokens)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.lang_dir}/tokens.txt: {len(tokens)} tokens ({args.token_type})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
