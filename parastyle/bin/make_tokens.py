"""Build the CTC token vocabulary ``<lang_dir>/tokens.txt`` from a training ``text`` file.

    python -m parastyle.bin.make_tokens --text data/train/text --lang_dir data/lang \\
        [--token_type char|bpe] [--vocab_size 500] [--bpe_type unigram|bpe] [--model_prefix bpe]

char (default): ``<blank>``, ``<space>``, then every character of the text (sorted).
bpe: a sentencepiece model ``<lang_dir>/<model_prefix>.model`` trained on the text; tokens are
``<blank>`` followed by its pieces.

Speech tokens of a data dir's semantic features (``<data>/feats.scp``) for the speech LM::

    python -m parastyle.bin.make_tokens --data data_sem/train --sset exp/sset --name sset
    python -m parastyle.bin.make_tokens --data data_sem/train --kmeans exp/kmeans/kmeans.npz \
        --kmeans_fit 256 --name kmeans          # fit on this data dir first (training set only)

write ``<data>/<name>/{utt2tokens,utt2num_tokens,tokens.yaml}``
(:mod:`parastyle.tokenizers.speech_tokens`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from parastyle.fileio import DataError, read_kv
from parastyle.text import build_char_vocab, train_sentencepiece, write_tokens


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", help="Kaldi text file (utt transcript): text units mode")
    p.add_argument("--lang_dir")
    p.add_argument("--data", help="data dir with semantic feats.scp: speech tokens mode")
    p.add_argument("--sset", help="SSET exp dir (model sset)")
    p.add_argument("--kmeans", help="k-means model file (.npz)")
    p.add_argument("--kmeans_fit", type=int, help="fit a k-means model of this many clusters on --data, save to --kmeans")
    p.add_argument("--kmeans_max_frames", type=int, default=200000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=None, help="token dir name under --data (default: sset or kmeans)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--token_type", choices=["char", "bpe"], default="char")
    p.add_argument("--vocab_size", type=int, default=500)
    p.add_argument("--bpe_type", choices=["unigram", "bpe"], default="unigram")
    p.add_argument("--model_prefix", default="bpe")
    args = p.parse_args(argv)
    if args.data:
        return _speech_tokens(args)
    if not args.text or not args.lang_dir:
        p.error("give --text and --lang_dir (text units) or --data (speech tokens)")
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


def _speech_tokens(args) -> int:
    from parastyle.tokenizers.speech_tokens import kmeans_tokens, sset_tokens, write_token_dir
    if bool(args.sset) == bool(args.kmeans):
        print("error: give exactly one of --sset and --kmeans", file=sys.stderr)
        return 2
    try:
        if args.sset:
            tokens, info = sset_tokens(args.sset, args.data, device=args.device)
            name = args.name or "sset"
        else:
            from parastyle.tokenizers.kmeans import KMeansTokenizer, fit_kmeans
            from parastyle.tokenizers.speech_tokens import iter_feats
            if args.kmeans_fit:
                km = fit_kmeans((x for _, x in iter_feats(args.data)), args.kmeans_fit,
                                max_frames=args.kmeans_max_frames, seed=args.seed)
                km.save(args.kmeans, seed=args.seed)
            km = KMeansTokenizer.load(args.kmeans)
            tokens, info = kmeans_tokens(km, args.data, args.kmeans)
            name = args.name or "kmeans"
        out = write_token_dir(args.data, name, tokens, info)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    n = sum(len(t) for t in tokens.values())
    print(f"{out}: {len(tokens)} utterances, {n} tokens ({info['type']}, vocabulary {info['vocab_size']})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
