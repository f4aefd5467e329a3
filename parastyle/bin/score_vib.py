"""Score a VIB model on a data dir.

    python -m parastyle.bin.score_vib --exp exp/vib_stage1 --data data/test [--checkpoint model.pt] \\
        [--results_md RESULTS.md] [--tag name] [--device cpu]

Stage 1 (``vib_stage1``): greedy CTC decoding; CER and WER against the data dir's ``text``;
writes ``<exp>/decode_<set>/hyp`` (utt hypothesis) and ``results.json`` with
``metrics: {"asr": {"cer", "wer", "n"}}``.
Stage 2 (``vib_stage2``): accuracy, UAR (balanced accuracy) and macro-F1 of the target (a factor or
speaker id); writes ``utt2pred_<target>`` and ``results.json`` with ``metrics: {target: {...}}``.
With ``--results_md`` the recipe's UAR table (stage 2) and its VIB transcription section (stage 1)
are regenerated. The work is :func:`parastyle.evaluate.vib.score`.
"""
from __future__ import annotations

import argparse
import logging
import sys

from parastyle.evaluate.vib import score
from parastyle.fileio import DataError
from parastyle.train.checkpoint import CheckpointError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--results_md", default=None)
    p.add_argument("--tag", default=None)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        r = score(args.exp, args.data, args.checkpoint, args.results_md, args.tag, args.device)
    except (DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for group, m in r["metrics"].items():
        print(f"{r['test_set']} {group}: " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                                    for k, v in m.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
