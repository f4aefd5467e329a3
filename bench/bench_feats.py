"""Benchmark feature extraction: utterances/s and real-time factor for 1 and N jobs.

    tools/venv/bin/python bench/bench_feats.py [--num_utts 200] [--nj 1,2] [--conf logmel|fbank] [--data DIR]

Without ``--data`` a synthetic corpus (espeak-ng, 22,050 Hz) of ``--num_utts`` utterances is made
under ``bench/out/``. Each run calls :func:`parastyle.features.extract.extract_feats` on a fresh
copy of the data dir (``--nj`` jobs, one torch thread per job; median of ``--repeats`` runs after a warm-up) and reports wall time,
utterances/s and the real-time factor (wall time / audio duration). Printed as a Markdown table
with the machine's core count; nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import soundfile as sf

from parastyle.features.extract import extract_feats
from parastyle.fileio import read_kv

CONFS = {
    "logmel": {"type": "logmel", "sample_rate": 22050, "n_fft": 1024, "win_length": 1024, "hop_length": 256, "n_mels": 80},
    "fbank": {"type": "fbank", "sample_rate": 16000, "num_mel_bins": 80},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num_utts", type=int, default=200)
    p.add_argument("--nj", default=f"1,{os.cpu_count()}")
    p.add_argument("--conf", choices=sorted(CONFS), default="logmel")
    p.add_argument("--data", default=None, help="existing data dir (default: make a synthetic one)")
    p.add_argument("--repeats", type=int, default=3, help="runs per job count; the median is reported")
    p.add_argument("--out", default="bench/out/feats")
    args = p.parse_args()
    out = Path(args.out)
    if args.data is None:
        src = out / f"synth{args.num_utts}"
        if not (src / "synth_meta.json").is_file():
            shutil.rmtree(src, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "parastyle.bin.make_synth_corpus", "--out", str(src),
                            "--lang_dir", str(out / "lang"), "--num_utts", str(args.num_utts), "--quiet"],
                           check=True, stdout=subprocess.DEVNULL)
    else:
        src = Path(args.data)
    wavs = read_kv(src / "wav.scp")
    audio_s = sum(sf.info(w).duration for w in wavs.values())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
          f"{platform.python_version()}; {len(wavs)} utterances, {audio_s / 60:.1f} min of audio; front-end {args.conf}")
    # warm-up outside the timings: imports, front-end construction, first-call kernel setup
    from parastyle.features.extract import extract_one, work_items
    from parastyle.features.frontend import build_frontend
    extract_one(build_frontend(CONFS[args.conf]), work_items(src)[0])
    print("\n| jobs | wall s | utt/s | RTF |\n|---|---|---|---|")
    for nj in [int(x) for x in args.nj.split(",")]:
        walls = []
        for _ in range(args.repeats):
            work = out / f"run_nj{nj}"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(src, work / "data", ignore=shutil.ignore_patterns("wav", "feats.scp", "utt2num_frames"))
            t0 = time.perf_counter()
            extract_feats(work / "data", CONFS[args.conf], work / "dump", nj=nj, progress=False)
            walls.append(time.perf_counter() - t0)
        wall = statistics.median(walls)
        print(f"| {nj} | {wall:.2f} | {len(wavs) / wall:.1f} | {wall / audio_s:.4f} |")

if __name__ == "__main__":
    main()
