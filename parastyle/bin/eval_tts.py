"""Objective evaluation of generated speech by independent judges (see :mod:`parastyle.evaluate.tts`).

    python -m parastyle.bin.eval_tts --synth_dir exp/tts/synth_speech --ref_data data/test \\
        --judge exp/judge_ce [--asr_judge exp/judge_asr] [--tag name] [--results_md RESULTS.md]
    python -m parastyle.bin.eval_tts --best_of_n --synth_dir exp/tts/synth_bon --ref_data data/test \\
        --judge exp/judge_ce --ranker clap=exp/clap --ranker parameta=exp/parameta [--asr_judge exp/judge_asr]
    python -m parastyle.bin.eval_tts --copy_synthesis --ref_data data/test --vocoder griffin_lim \\
        --vocoder exp/vocoder [--max_utts 50] [--out vocoders.json]
    python -m parastyle.bin.eval_tts --copy_synthesis --ref_data data/test --vocoder griffin_lim \
        --write_dir exp/vocoder/synth_copy_test        # a synthesis dir of vocoded ground truth, for eval_tts

Writes ``<synth_dir>/results.json`` (+ ``manipulated.png``, ``asr_hyps.txt``), or
``results_best_of_n.json``; with ``--results_md`` the recipe's TTS tables are regenerated.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from parastyle.fileio import DataError, atomic_write
from parastyle.train.checkpoint import CheckpointError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synth_dir", default=None)
    p.add_argument("--ref_data", required=True, help="ground-truth test data dir")
    p.add_argument("--lang_dir", default=None, help="accepted for symmetry with the recipe (labels come from the judge)")
    p.add_argument("--judge", default=None, help="multi-task CE style judge exp (trained on ground truth)")
    p.add_argument("--asr_judge", default=None, help="ctc_asr exp (trained on ground truth)")
    p.add_argument("--tag", default=None)
    p.add_argument("--results_md", default=None)
    p.add_argument("--best_of_n", action="store_true")
    p.add_argument("--ranker", action="append", default=[], help="name=exp (CLAP or ParaMETA), repeatable")
    p.add_argument("--copy_synthesis", action="store_true", help="analysis-synthesis MCD of each --vocoder")
    p.add_argument("--vocoder", action="append", default=[])
    p.add_argument("--max_utts", type=int, default=None)
    p.add_argument("--out", default=None, help="--copy_synthesis: json output")
    p.add_argument("--write_dir", default=None, help="--copy_synthesis with one --vocoder: write the vocoded "
                                                     "ground truth as a synthesis dir here (then run eval_tts on it)")
    p.add_argument("--no_plot", action="store_true")
    p.add_argument("--no_speaker_similarity", action="store_true")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = logging.getLogger("eval_tts")
    from parastyle.evaluate import tts
    try:
        if args.copy_synthesis:
            if not args.vocoder:
                raise DataError("--copy_synthesis needs at least one --vocoder (griffin_lim or a vocoder exp dir)")
            if args.write_dir:
                if len(args.vocoder) != 1:
                    raise DataError("--write_dir takes exactly one --vocoder")
                out = tts.vocode_data_dir(args.ref_data, args.vocoder[0], args.write_dir, args.max_utts, args.device)
                print(out)
                return 0
            res = tts.vocoder_copy_synthesis(args.ref_data, args.vocoder, args.max_utts, args.device)
            if args.out:
                with atomic_write(args.out) as f:
                    json.dump(res, f, indent=2)
                    f.write("\n")
        elif args.best_of_n:
            if not (args.synth_dir and args.judge and args.ranker):
                raise DataError("--best_of_n needs --synth_dir, --judge and at least one --ranker name=exp")
            rankers = {}
            for r in args.ranker:
                name, sep, exp = r.partition("=")
                if not sep or not name or not exp:
                    raise DataError(f"--ranker {r!r}: expected name=exp_dir")
                rankers[name] = exp
            res = tts.evaluate_best_of_n(args.synth_dir, args.ref_data, args.judge, rankers, args.asr_judge,
                                         args.tag, args.results_md, args.device)
        else:
            if not (args.synth_dir and args.judge):
                raise DataError("give --synth_dir and --judge")
            res = tts.evaluate_tts(args.synth_dir, args.ref_data, args.judge, args.asr_judge,
                                   speaker_similarity=not args.no_speaker_similarity, plot=not args.no_plot,
                                   tag=args.tag, results_md=args.results_md, device=args.device)
    except (DataError, CheckpointError, ValueError, KeyError) as e:
        log.error("%s", e)
        return 1
    print(json.dumps(res.get("metrics", res), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
