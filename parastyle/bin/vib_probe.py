"""Linear probes of the VIB latents: how much textual and acoustic information each stream holds.

    python -m parastyle.bin.vib_probe --exp exp/vib_stage2_emotion --train_data data/train \\
        --test_data data/test [--speaker_train_data data/spk_train --speaker_test_data data/spk_test] \\
        [--out_dir <exp>/probe_<test>] [--results_md RESULTS.md] [--ctc_epochs 30] [--ctc_max_utts 2000]

Representations (from ``model.embed`` of a ``vib_stage2`` exp): ``z_textual`` (frozen stage-1 mean),
``z_acoustic`` (stage-2 mean) and ``original`` (the stage-2 layer-weighted input).

* Transcription: a linear CTC probe (one ``Linear(D, V)`` on frames, Adam, ``--ctc_epochs`` passes
  over the training utterances) decoded greedily on the test set -> CER and WER (needs ``text``).
* Every utterance-level factor of the task (and of the data dir) and the speaker: logistic
  regression on standardised mean-pooled vectors, and (unless ``--no_attention``) an attention
  pooling + linear probe on the frames trained to convergence (columns ``..._attn``) -> UAR for
  factors, accuracy for speakers.
  Speaker identity is closed-set: it is probed on ``--speaker_train_data`` / ``--speaker_test_data``
  (same speakers, different utterances) when given, else on train/test when every test speaker is
  a training speaker, else not at all (logged).

Writes ``<out_dir>/results.json`` (``{"method": "vib_probe", "backbone", "test_set", "metrics":
{representation: {"cer", "wer", "<factor>_uar", "<factor>_uar_attn", "speaker_accuracy", ...}}}``), ``probe_table.md``,
``layer_weights.png`` (stage 1 and stage 2) and ``tsne.png`` (both latents coloured by emotion
and speaker), and with ``--results_md`` the table into that file.

The work is :func:`parastyle.evaluate.probing.probe`.
"""
from __future__ import annotations

import argparse
import logging
import sys

from parastyle.evaluate.probing import probe
from parastyle.fileio import DataError
from parastyle.train.checkpoint import CheckpointError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True, help="vib_stage2 exp dir")
    p.add_argument("--train_data", required=True)
    p.add_argument("--test_data", required=True)
    p.add_argument("--speaker_train_data", default=None)
    p.add_argument("--speaker_test_data", default=None)
    p.add_argument("--lang_dir", default=None, help="to probe factors the model was not trained on")
    p.add_argument("--out_dir", default=None)
    p.add_argument("--results_md", default=None)
    p.add_argument("--tag", default=None)
    p.add_argument("--ctc_epochs", type=int, default=30)
    p.add_argument("--ctc_max_utts", type=int, default=2000, help="utterances whose frames are kept per set")
    p.add_argument("--no_attention", action="store_true",
                   help="skip the attention-pooling probes (logistic regression and CTC only)")
    p.add_argument("--attention_max_epochs", type=int, default=300)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if bool(args.speaker_train_data) != bool(args.speaker_test_data):
        p.error("give both --speaker_train_data and --speaker_test_data, or neither")
    try:
        r = probe(args.exp, args.train_data, args.test_data, args.out_dir, args.speaker_train_data,
                  args.speaker_test_data, args.lang_dir, args.results_md, args.ctc_epochs, args.ctc_max_utts,
                  args.device, args.tag, attention=not args.no_attention,
                  attention_max_epochs=args.attention_max_epochs)
    except (DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for rep, m in r["metrics"].items():
        print(f"{rep}: " + " ".join(f"{k}={v:.4f}" for k, v in m.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
