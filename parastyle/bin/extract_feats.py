"""Extract features of a Kaldi data dir (log-mel, Kaldi fbank, ...) into kaldiio archives.

    python -m parastyle.bin.extract_feats --data data/train --conf conf/feats.yaml --dump dump/train --nj 4

``--conf`` is a YAML front-end description (``type: logmel | fbank | raw`` and its arguments, see
:mod:`parastyle.features.frontend`). Writes ``<dump>/feats.<j>.ark`` and, once every job has
succeeded, ``<data>/utt2num_frames``, ``<data>/feats_conf.yaml``, ``<data>/feats_arks`` and ``<data>/feats.scp``.
A failing utterance stops the run with an error naming it, and leaves no ``feats.scp``; so do a
repeated wav.scp/segments key, a truncated WAV, a segment more than 0.5 s past its recording,
non-UTF-8 input (``file:line``) and a ``--dump`` path with whitespace.
"""
from __future__ import annotations

import argparse
import os
import sys

import yaml

from parastyle.features.extract import extract_feats
from parastyle.fileio import DataError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="extract_feats", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="Kaldi data dir (wav.scp, utt2spk, optional segments)")
    p.add_argument("--conf", required=True, help="front-end YAML (type: logmel | fbank | raw, ...)")
    p.add_argument("--dump", required=True, help="directory of the feature archives")
    p.add_argument("--nj", type=int, default=1, help="parallel jobs (default %(default)s)")
    p.add_argument("--compress", action="store_true", help="Kaldi compressed matrices (about 4x smaller)")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress bar: auto = on a terminal (default %(default)s)")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    try:
        with open(args.conf, encoding="utf-8") as f:
            conf = yaml.safe_load(f)
    except OSError as e:
        print(f"extract_feats: error: cannot read {args.conf}: {e}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as e:
        with open(args.conf, "rb") as f:
            line = f.read()[:e.start].count(b"\n") + 1
        print(f"extract_feats: error: {args.conf}:{line}: not valid UTF-8 ({e.reason})", file=sys.stderr)
        return 1
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{args.conf}:{mark.line + 1}" if mark is not None else args.conf
        print(f"extract_feats: error: {where}: not valid YAML ({getattr(e, 'problem', e)})", file=sys.stderr)
        return 1
    progress = {"auto": None, "on": True, "off": False}[args.progress]
    try:
        summary = extract_feats(args.data, conf, args.dump, nj=args.nj, compress=args.compress, progress=progress)
    except (DataError, ValueError) as e:
        print(f"extract_feats: error: {e}", file=sys.stderr)
        print(f"extract_feats: no {os.path.join(args.data, 'feats.scp')} written", file=sys.stderr)
        return 1
    print(f"extract_feats: {args.data}: {summary['num_utts']} utterances, {summary['num_frames']} frames "
          f"in {summary['seconds']:.1f} s ({summary['utts_per_s']:.1f} utt/s, nj={summary['nj']}) -> {args.dump}",
          file=sys.stderr)
    if summary.get("truncated_segments"):
        print(f"extract_feats: warning: {summary['truncated_segments']} segment(s) ended past their recording "
              f"(by at most 0.5 s) and were truncated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
