"""Semantic features of a data dir for the speech LM (see :mod:`parastyle.features.semantic`).

    python -m parastyle.bin.dump_semantic --data data/train --out data_sem/train --ctc_exp exp/ctc_asr [--spk_emb]
    python -m parastyle.bin.dump_semantic --data data/train --out data_sem/train --copy_only [--spk_emb]
        # then: python -m parastyle.bin.dump_ssl_layers --data data_sem/train --ssl_path ... --layers L

``--spk_emb`` also writes ``<out>/spk_emb.{ark,scp}`` (resemblyzer d-vectors of the audio).
"""
from __future__ import annotations

import argparse
import sys

from parastyle.fileio import DataError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--ctc_exp", help="ctc_asr exp whose hidden layer is the semantic feature")
    g.add_argument("--copy_only", action="store_true", help="copy the data dir (features follow from an SSL dump)")
    p.add_argument("--spk_emb", action="store_true")
    p.add_argument("--ark_dir", help="where the archives go (default --out); feats.scp / spk_emb.scp name them by path")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    from parastyle.features import semantic
    try:
        if args.ctc_exp:
            n = semantic.dump_ctc_hidden(args.ctc_exp, args.data, args.out, device=args.device, ark_dir=args.ark_dir)
            print(f"{args.out}: semantic features of {n} utterances ({args.ctc_exp} hidden layer)", file=sys.stderr)
        else:
            semantic.copy_data_dir(args.data, args.out)
        if args.spk_emb:
            n = semantic.dump_speaker_embeddings(args.out, device=args.device, ark_dir=args.ark_dir)
            print(f"{args.out}/spk_emb.scp: {n} speaker embeddings", file=sys.stderr)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
