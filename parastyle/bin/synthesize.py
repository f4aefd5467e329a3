"""Synthesise speech with a style-conditioned TTS exp.

One text::

    python -m parastyle.bin.synthesize --tts_exp exp/tts --out exp/tts/synth_demo --text "Hello there." --lang en \\
        (--style_wav ref.wav | --style_text "a sad old man speaking German" | --speaker spk001) \\
        [--style_exp exp/parameta] [--manipulate emotion=happy] [--num_candidates 10] [--vocoder exp/hifigan]

A data dir (text + reference recording per utterance)::

    python -m parastyle.bin.synthesize --tts_exp exp/tts --out exp/tts/synth_test_speech --data data/test \\
        --prompt speech|text|manipulated|speaker [--manipulate emotion=happy | emotion=*] [--copy_synthesis]

``--style_exp`` defaults to the exp that made the TTS training vectors (``data.tts.style.exp``); with
``--manipulate <factor>=<label>`` the style vector's ``<factor>`` subspace is replaced by the
target prototype (``<factor>=*``: each utterance to the next class after its own). Candidates
(``--num_candidates N``) sample durations / pitch with ``--temperature_duration`` /
``--temperature_pitch``; results are deterministic for ``--seed``. Writes the synthesis dir
described in :mod:`parastyle.evaluate.synthesis` and prints the real-time factor.
"""
from __future__ import annotations

import argparse
import logging
import sys

from parastyle.fileio import DataError
from parastyle.train.checkpoint import CheckpointError

logger = logging.getLogger("synthesize")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tts_exp", required=True)
    ap.add_argument("--out", required=True, help="synthesis dir to write (e.g. exp/tts/synth_test_speech)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="text to say (with --lang)")
    src.add_argument("--data", help="data dir: text, utt2language, wav.scp / utt2caption per utterance")
    ap.add_argument("--lang", help="language of --text (en, cmn, de, fr, es, ...)")
    ap.add_argument("--style_wav", help="speech prompt (wav file)")
    ap.add_argument("--style_text", help="text prompt (style description)")
    ap.add_argument("--speaker", help="speaker id (TTS exps with a speaker table)")
    ap.add_argument("--prompt", default="speech", choices=["speech", "text", "manipulated", "speaker"],
                    help="with --data: where each utterance's style comes from")
    ap.add_argument("--style_exp", default=None, help="ParaMETA or CLAP exp (default: the TTS training one)")
    ap.add_argument("--style_mode", default=None, choices=["subspaces", "meta"])
    ap.add_argument("--manipulate", default=None, help="<factor>=<label> (or <factor>=* with --data)")
    ap.add_argument("--copy_synthesis", action="store_true", help="with --data: durations from the reference mel")
    ap.add_argument("--num_candidates", type=int, default=1)
    ap.add_argument("--temperature_duration", type=float, default=None,
                    help="noise on log durations (default 0, or 0.3 with --num_candidates > 1)")
    ap.add_argument("--temperature_pitch", type=float, default=None,
                    help="noise on normalised pitch (default 0, or 0.5 with --num_candidates > 1)")
    ap.add_argument("--length_scale", type=float, default=1.0)
    ap.add_argument("--reference_weight", type=float, default=None,
                    help="models with a reference encoder: the speech prompt's utterance latent as prior + w (z - prior) "
                         "(default: the model's reference_encoder.weight)")
    ap.add_argument("--max_utts", type=int, default=None, help="with --data: the first N utterances only")
    ap.add_argument("--vocoder", default="griffin_lim", help="griffin_lim or a vocoder exp dir")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--progress", choices=["auto", "yes", "no"], default="auto")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from parastyle.evaluate.synthesis import Synthesizer
    n = int(args.num_candidates)
    if n < 1:
        logger.error("--num_candidates must be >= 1")
        return 2
    td = args.temperature_duration if args.temperature_duration is not None else (0.3 if n > 1 else 0.0)
    tp = args.temperature_pitch if args.temperature_pitch is not None else (0.5 if n > 1 else 0.0)
    try:
        synth = Synthesizer(args.tts_exp, vocoder=args.vocoder, style_exp=args.style_exp, style_mode=args.style_mode,
                            device=args.device, checkpoint=args.checkpoint)
        if args.text is not None:
            if not args.lang:
                raise DataError("--text needs --lang")
            if args.copy_synthesis:
                raise DataError("--copy_synthesis needs --data (a reference mel per utterance)")
            reqs = synth.requests_for_text(args.text, args.lang, style_wav=args.style_wav, style_text=args.style_text,
                                           manipulate=args.manipulate, speaker=args.speaker)
            prompt = reqs[0].prompt.split(" ", 1)[0]
        else:
            if args.style_wav or args.style_text or args.speaker:
                raise DataError("--data takes its prompts from the data dir (--prompt); drop --style_wav/--style_text/--speaker")
            from parastyle.fileio import read_kv
            utts = list(read_kv(f"{args.data}/utt2spk"))
            if args.max_utts:
                utts = utts[: args.max_utts]
            reqs = synth.requests_for_data(args.data, prompt=args.prompt, manipulate=args.manipulate,
                                           copy_synthesis=args.copy_synthesis, utts=utts)
            prompt = args.prompt
        reqs = synth.with_candidates(reqs, n)
        progress = args.progress == "yes" or (args.progress == "auto" and sys.stderr.isatty())
        summary = synth.run(reqs, args.out, seed=args.seed, temperature_duration=td, temperature_pitch=tp,
                            length_scale=args.length_scale, progress=progress, reference_weight=args.reference_weight,
                            extra_conf={"prompt_type": prompt, "manipulation": args.manipulate,
                                        "copy_synthesis": bool(args.copy_synthesis), "num_candidates": n,
                                        "data": args.data})
    except (DataError, CheckpointError) as e:
        logger.error("%s", e)
        return 1
    print(f"{args.out}: {summary['num_utts']} utterances, {summary['audio_s']:.1f} s of audio in "
          f"{summary['compute_s']:.1f} s: RTF {summary['rtf']:.4f} (acoustic model + {summary['vocoder']}, "
          f"{summary['device']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
