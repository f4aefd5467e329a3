"""F0 (WORLD DIO + StoneMask) and energy per log-mel frame of a data dir: the TTS variance targets.

    python -m parastyle.bin.extract_prosody --data data/train --dump dump/train [--feats_conf conf/feats.yaml] [--nj 2]

Writes ``<dump>/prosody.ark`` and, last, ``<data>/prosody.scp`` (``(T, 2)``: F0 Hz with 0 = unvoiced,
energy) on the frames of ``feats.scp`` (checked against ``utt2num_frames``).
"""
from __future__ import annotations

import argparse
import logging
import sys

import yaml

from parastyle.features.pitch import extract_prosody
from parastyle.fileio import DataError

logger = logging.getLogger("extract_prosody")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--feats_conf", default=None, help="logmel config (default <data>/feats_conf.yaml)")
    ap.add_argument("--nj", type=int, default=1, help="worker processes")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    conf = None
    if args.feats_conf:
        with open(args.feats_conf, encoding="utf-8") as f:
            conf = yaml.safe_load(f)
    try:
        n = extract_prosody(args.data, args.dump, conf, nj=args.nj, progress=sys.stderr.isatty())
    except DataError as e:
        logger.error("%s", e)
        return 1
    logger.info("%s/prosody.scp: %d utterances", args.data, n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
