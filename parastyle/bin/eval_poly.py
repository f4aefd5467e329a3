"""Score a PolySpeech LM exp (ASR, LID, GID, TTS) on a semantic test set; or a speech tokenizer's reconstruction.

    python -m parastyle.bin.eval_poly --exp exp/poly_multi --data data_sem/test \\
        [--token_decoder exp/tokdec_sset --judge exp/ctc_asr --vocoder griffin_lim --mel_conf conf/feats.yaml] \\
        [--asr_method greedy|beam --beam_size 4 --tts_max_utts 40 --top_k 20 --temperature 1.0]
    python -m parastyle.bin.eval_poly --tokenizer_recon sset --data data_sem/test --sset exp/sset --out exp/sset/recon_test.json
    python -m parastyle.bin.eval_poly --tables RESULTS.md --exp_glob 'exp/poly_*/decode_test/results.json' \\
        --recon exp/sset/recon_test.json exp/kmeans/recon_test.json

Writes ``<exp>/decode_<set>/results.json`` (see :mod:`parastyle.evaluate.polyspeech`).
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

from parastyle.fileio import DataError, atomic_write


def _replace_block(md: Path, block: str) -> None:
    begin, end = "<!-- BEGIN poly1 tables (parastyle.bin.eval_poly --tables) -->", "<!-- END poly1 tables -->"
    text = md.read_text(encoding="utf-8") if md.is_file() else "# Results\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
    else:
        head, tail = text.rstrip("\n") + "\n\n", "\n"
    with atomic_write(md) as f:
        f.write(head + begin + "\n" + block + end + tail)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp")
    p.add_argument("--data")
    p.add_argument("--out")
    p.add_argument("--token_decoder")
    p.add_argument("--judge")
    p.add_argument("--vocoder", default="griffin_lim")
    p.add_argument("--mel_conf", help="YAML of the log-mel front-end the token decoder predicts (vocoder input)")
    p.add_argument("--asr_method", choices=["greedy", "beam"], default="greedy")
    p.add_argument("--beam_size", type=int, default=4)
    p.add_argument("--tts_max_utts", type=int, default=40)
    p.add_argument("--tts_max_len", type=int, default=600)
    p.add_argument("--top_k", type=int, default=20)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tokenizer_recon", help="token dir name: measure the reconstruction of --data's tokens")
    p.add_argument("--sset")
    p.add_argument("--kmeans")
    p.add_argument("--tables", help="RESULTS.md to (re)write the poly1 tables in")
    p.add_argument("--exp_glob", default="exp/*/decode_test/results.json")
    p.add_argument("--recon", nargs="*", default=[])
    args = p.parse_args(argv)
    from parastyle.evaluate import polyspeech as ev
    try:
        if args.tables:
            results = [json.loads(Path(f).read_text()) for f in sorted(glob.glob(args.exp_glob))]
            if not results:
                raise DataError(f"no results.json matches {args.exp_glob}")
            recon = [json.loads(Path(f).read_text()) for f in args.recon]
            _replace_block(Path(args.tables), ev.results_tables(results, recon))
            print(f"{args.tables}: {len(results)} exp(s), {len(recon)} tokenizer row(s)", file=sys.stderr)
            return 0
        if not args.data:
            p.error("--data is required")
        if args.tokenizer_recon:
            r = ev.token_reconstruction(args.data, args.tokenizer_recon, sset_exp=args.sset, kmeans=args.kmeans,
                                        device=args.device)
            r["name"] = args.tokenizer_recon
            out = Path(args.out or f"{args.tokenizer_recon}_recon.json")
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(out) as f:
                json.dump(r, f, indent=1, sort_keys=True)
            print(json.dumps(r), file=sys.stderr)
            return 0
        if not args.exp:
            p.error("--exp is required")
        mel = None
        if args.mel_conf:
            import yaml
            with open(args.mel_conf, encoding="utf-8") as f:
                mel = yaml.safe_load(f)
        res = ev.evaluate_lm(args.exp, args.data, args.out, args.asr_method, args.beam_size, args.token_decoder,
                             args.judge, args.vocoder, args.tts_max_utts, args.top_k, args.temperature,
                             args.tts_max_len, args.device, mel, args.seed)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(res["metrics"], indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
