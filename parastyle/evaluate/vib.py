"""Scoring of VIB exps on a data dir (``parastyle.bin.score_vib`` calls :func:`score`).

Stage 1 (``vib_stage1``): greedy CTC decoding; CER and WER against the data dir's ``text``;
writes ``<exp>/decode_<set>/hyp`` (utt hypothesis) and ``results.json`` with
``metrics: {"asr": {"cer", "wer", "n"}}``.
Stage 2 (``vib_stage2``): accuracy, UAR (balanced accuracy) and macro-F1 of the target (a factor or
speaker id); writes ``utt2pred_<target>`` and ``results.json`` with ``metrics: {target: {...}}``.
With ``results_md`` the recipe's UAR table (stage 2) and its VIB transcription section (stage 1)
are regenerated. The data dir must carry the training front-end
(:func:`parastyle.evaluate.checks.check_frontend`); non-finite features stop with the utterance id.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from parastyle.data.collate import IGNORE_INDEX, move_batch
from parastyle.evaluate.checks import check_batch_finite, check_frontend, check_labels_present
from parastyle.fileio import DataError, atomic_write, write_kv
from parastyle.metrics.asr import cer, wer
from parastyle.metrics.classification import classification_report
from parastyle.metrics.results_table import update_results_md
from parastyle.metrics.vib_tables import render_rows, update_md_section
from parastyle.models.vib import backbone_of_exp
from parastyle.train.build import build_dataloader
from parastyle.train.checkpoint import load_model_from_exp


def _asr_rows(exp_root: Path):
    rows = {}
    for p in sorted(exp_root.glob("*/decode_*/results.json")):
        r = json.loads(p.read_text(encoding="utf-8"))
        if "asr" in r.get("metrics", {}):
            rows[f"{r['method']} ({r['backbone']}) {r['test_set']}"] = {
                "CER": r["metrics"]["asr"]["cer"], "WER": r["metrics"]["asr"]["wer"], "n": r["metrics"]["asr"]["n"]}
    return rows


def score(exp, data, checkpoint=None, results_md=None, tag=None, device="cpu") -> dict:
    """Score a VIB exp on ``data`` (see the module docstring); returns the results dict."""
    exp, data = Path(exp), Path(data)
    model, config, task = load_model_from_exp(exp, checkpoint, map_location=device)
    model.to(device)
    name = config["model"]["name"]
    if name not in ("vib_stage1", "vib_stage2"):
        raise DataError(f"{exp}: model {name!r} is not a VIB model (use parastyle.bin.score)")
    check_frontend(config, task, data, exp_dir=exp)
    if name == "vib_stage2" and model.target != "speaker":
        check_labels_present(data, [model.target])
    loader = build_dataloader(config, data, task=task, train=False)
    out_dir = exp / (f"decode_{data.name}" if checkpoint in (None, "model.pt")
                     else f"decode_{data.name}_{Path(checkpoint).stem}")
    out_dir.mkdir(parents=True, exist_ok=True)
    utts, refs, hyps = [], [], []
    with torch.no_grad():
        for batch in loader:
            batch = move_batch(batch, device)
            check_batch_finite(batch, str(data))
            utts.extend(batch["utt_ids"])
            if name == "vib_stage1":
                if "text" not in batch:
                    raise DataError(f"{data}: stage-1 scoring needs a 'text' line for every utterance")
                hyps.extend(model.predict(batch)["text"])
                refs.extend(batch["text"])
            else:
                hyps.extend(model.predict(batch)[model.target].cpu().tolist())
                refs.extend(model.labels(batch).cpu().tolist())
    if name == "vib_stage1":
        write_kv(out_dir / "hyp", dict(zip(utts, hyps)))
        metrics = {"asr": {"cer": cer(refs, hyps), "wer": wer(refs, hyps), "n": len(refs)}}
    else:
        y, p = np.asarray(refs), np.asarray(hyps)
        write_kv(out_dir / f"utt2pred_{model.target}", {u: model.classes[k] for u, k in zip(utts, p)})
        known = y != IGNORE_INDEX
        if not known.any():
            raise DataError(f"{data}: no utterance has a known {model.target} label")
        rep = classification_report(y[known], p[known], len(model.classes))
        rep.pop("confusion")
        metrics = {model.target: rep}
    result = {"method": tag or name, "backbone": backbone_of_exp(config), "test_set": data.name, "metrics": metrics}
    with atomic_write(out_dir / "results.json") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    if results_md:
        update_results_md(results_md, exp.parent)
        rows = _asr_rows(exp.parent)
        if rows:
            update_md_section(results_md, "vib transcription",
                              "Stage 1 (textual VIB, greedy CTC).\n\n" + render_rows(rows, ["CER", "WER", "n"], "exp"))
    return result
