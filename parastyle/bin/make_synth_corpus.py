"""Generate the controllable synthetic speech-style corpus as a Kaldi data dir.

Example::

    python -m parastyle.bin.make_synth_corpus --out data/all --lang_dir data/lang \\
        --num_utts 2000 --seed 0 --nj 2 [--snr_db 20 --noise_type pink]

Writes ``wav.scp text utt2spk spk2utt utt2{emotion,gender,age,language,caption,tags,dur}`` and
``synth_meta.json`` in ``--out``, 22,050 Hz wavs under ``--wav_dir`` (default ``<out>/wav``), and
``<lang_dir>/{emotion,gender,age,language}.txt``. Prints the meta summary (counts, Cramér's V).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from parastyle.synth.generate import NOISE_TYPES, SynthConfig, SynthError, make_corpus


def _csv(s: str) -> list:
    return [x for x in s.split(",") if x]


def build_parser() -> argparse.ArgumentParser:
    d = SynthConfig()
    p = argparse.ArgumentParser(prog="make_synth_corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output Kaldi data dir")
    p.add_argument("--lang_dir", required=True, help="where to write <factor>.txt label vocabularies")
    p.add_argument("--wav_dir", default=None, help="where to write wavs (default: <out>/wav)")
    p.add_argument("--num_utts", type=int, default=d.num_utts, help="number of utterances (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    p.add_argument("--nj", type=int, default=2, help="concurrent espeak-ng jobs (default %(default)s)")
    p.add_argument("--languages", type=_csv, default=d.languages, help="comma list (default en,cmn,de,fr,es)")
    p.add_argument("--emotions", type=_csv, default=d.emotions,
                   help="comma list (default neutral,happy,sad,angry,surprise)")
    p.add_argument("--ages", type=_csv, default=d.ages, help="comma list (default child,adult,senior)")
    p.add_argument("--genders", type=_csv, default=d.genders, help="comma list (default female,male)")
    p.add_argument("--num_speakers", type=int, default=None,
                   help="number of speakers (default: max(num_utts/utts_per_spk, min(2*cells, num_utts/4)))")
    p.add_argument("--utts_per_spk", type=int, default=d.utts_per_spk,
                   help="target utterances per speaker for the automatic speaker count (default %(default)s)")
    p.add_argument("--jitter", type=float, default=d.jitter,
                   help="multiplier of per-utterance prosody jitter (default %(default)s)")
    p.add_argument("--overlap", type=float, default=d.overlap,
                   help="pull of emotion/age offsets toward neutral/adult, 0..1 (default %(default)s)")
    p.add_argument("--speaker_spread", type=float, default=d.speaker_spread,
                   help="multiplier of speaker pitch/rate/warp/gain spread (default %(default)s)")
    p.add_argument("--snr_db", type=float, default=d.snr_db,
                   help="add noise at this SNR in dB (default: no noise)")
    p.add_argument("--noise_type", choices=NOISE_TYPES, default=d.noise_type, help="(default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    config = SynthConfig(num_utts=args.num_utts, seed=args.seed, languages=args.languages,
                         emotions=args.emotions, genders=args.genders, ages=args.ages,
                         num_speakers=args.num_speakers, utts_per_spk=args.utts_per_spk,
                         jitter=args.jitter, overlap=args.overlap, speaker_spread=args.speaker_spread,
                         snr_db=args.snr_db, noise_type=args.noise_type)
    try:
        config.validate()
        start = time.time()
        meta = make_corpus(config, Path(args.out), Path(args.lang_dir),
                           wav_dir=Path(args.wav_dir) if args.wav_dir else None,
                           nj=args.nj, progress=not args.quiet)
    except (SynthError, ValueError) as e:
        print(f"make_synth_corpus: error: {e}", file=sys.stderr)
        return 1
    elapsed = time.time() - start
    summary = {k: meta[k] for k in ("num_utts", "num_speakers", "total_hours", "counts", "cramers_v")}
    print(json.dumps(summary, indent=1, ensure_ascii=False))
    print(f"make_synth_corpus: {meta['num_utts']} utterances in {elapsed:.1f} s "
          f"({meta['num_utts'] / max(elapsed, 1e-9):.1f} utt/s, nj={args.nj}) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
