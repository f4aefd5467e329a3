"""Dump the hidden layers of a frozen SSL model for a Kaldi data dir (VIB front-end ``dumped``).

    python -m parastyle.bin.dump_ssl_layers --data data/train --ssl_path /models/hubert_large.pt \\
        --arch HUBERT_LARGE --dump dump/ssl/train [--layers all|6,12,18|1-12] [--device auto]

``--ssl_path`` is a torchaudio bundle state-dict file (with ``--arch``, the bundle name), a file
written by ``parastyle.nn.encoders.ssl.save_ssl_model``, or a Hugging Face checkpoint directory
(read locally, never downloaded). Layers are 1-based transformer layer numbers. Writes
``<dump>/ssl_layers.ark`` (one ``(T, L * D)`` matrix per utterance, the layers concatenated),
``<dump>/ssl_layers.yaml`` and, once every utterance has succeeded, ``<data>/utt2num_frames`` and
``<data>/feats.scp``; training configs then use ``model.frontend: {type: dumped, num_layers: L}``
with ``data.feats: true``. A failing utterance stops the run with an error naming it and leaves no
``feats.scp``. See :mod:`parastyle.features.ssl_layers`.
"""
from __future__ import annotations

import argparse
import os
import sys

from parastyle.features.ssl_layers import dump_ssl_layers
from parastyle.fileio import DataError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dump_ssl_layers", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="Kaldi data dir (wav.scp, utt2spk, optional segments)")
    p.add_argument("--ssl_path", required=True,
                   help="SSL model: torchaudio state-dict file, save_ssl_model file or Hugging Face checkpoint dir")
    p.add_argument("--arch", default=None,
                   help="torchaudio bundle name for a bare state-dict file (WAVLM_LARGE, HUBERT_BASE, ...)")
    p.add_argument("--dump", required=True, help="directory of ssl_layers.ark / ssl_layers.yaml")
    p.add_argument("--layers", default="all",
                   help="'all' or 1-based transformer layers, e.g. '6,12,18' or '1-12' (default %(default)s)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default %(default)s)")
    p.add_argument("--sample_rate", type=int, default=16000,
                   help="audio is resampled to the SSL model's rate (default %(default)s)")
    p.add_argument("--compress", action="store_true", help="Kaldi compressed matrices (about 4x smaller, lossy)")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress bar: auto = on a terminal (default %(default)s)")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    progress = {"auto": None, "on": True, "off": False}[args.progress]
    try:
        s = dump_ssl_layers(args.data, args.ssl_path, args.dump, arch=args.arch, layers=args.layers,
                            device=args.device, sample_rate=args.sample_rate, compress=args.compress,
                            progress=progress)
    except (DataError, ValueError) as e:
        print(f"dump_ssl_layers: error: {e}", file=sys.stderr)
        print(f"dump_ssl_layers: no {os.path.join(args.data, 'feats.scp')} written", file=sys.stderr)
        return 1
    print(f"dump_ssl_layers: {args.data}: {s['num_utts']} utterances, {s['num_frames']} frames, "
          f"layers {s['layers']} x {s['layer_dim']} = dim {s['dim']} in {s['seconds']:.1f} s "
          f"({s['utts_per_s']:.1f} utt/s) -> {args.dump}; "
          f"use model.frontend {{type: dumped, num_layers: {len(s['layers'])}}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
