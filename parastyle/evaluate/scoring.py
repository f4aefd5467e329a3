"""Score a trained classifier on a data dir: per-factor UAR, macro-F1, accuracy, confusion matrices.

:func:`score` writes ``<exp>/decode_<set>/``: ``results.json``
(``{"method", "backbone", "test_set", "metrics": {factor: {"balanced_accuracy", "macro_f1",
"accuracy", "n"}}}``), ``confusion_<factor>.csv`` / ``.png`` and ``utt2pred_<factor>``; with
``results_md`` the recipe's results table is regenerated from all results.json files.
Predictions come from ``model.predict(batch) -> {factor: (B,)}``; utterances whose label is
unknown (absent from ``utt2<factor>``) are not counted for that factor.

Before a number is computed: the checkpoint's weights are finite, the data dir validates, its
features come from the training front-end (:func:`parastyle.evaluate.checks.check_frontend`),
no factor file is present but empty, and every batch's features are finite (else the utterance
is named).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from parastyle.data.collate import IGNORE_INDEX, move_batch
from parastyle.evaluate.checks import check_batch_finite, check_frontend, check_labels_present, check_model_finite
from parastyle.fileio import DataError, atomic_write, write_kv
from parastyle.metrics.classification import classification_report
from parastyle.metrics.results_table import set_label, update_results_md
from parastyle.train.build import build_dataloader
from parastyle.train.checkpoint import load_model_from_exp
from parastyle.train.trainer import check_data_dir

logger = logging.getLogger(__name__)


def factor_report(out_dir: Path, factor: str, vocab, y: np.ndarray, p: np.ndarray, set_name: str) -> Dict[str, Any]:
    """Classification report of one factor (known labels ``y``, predictions ``p``) with its confusion
    matrix written as ``confusion_<factor>.csv`` and ``.png`` under ``out_dir``; returns the report
    without the matrix (the ``metrics`` entry of results.json)."""
    rep = classification_report(y, p, len(vocab))
    cm = np.asarray(rep.pop("confusion"))
    with atomic_write(out_dir / f"confusion_{factor}.csv") as fh:
        fh.write("reference\\predicted," + ",".join(vocab) + "\n")
        for lab, row in zip(vocab, cm):
            fh.write(lab + "," + ",".join(str(int(v)) for v in row) + "\n")
    _plot_confusion(cm, vocab, f"{factor} ({set_name}) UAR={rep['balanced_accuracy']:.3f}",
                    out_dir / f"confusion_{factor}.png")
    return rep


def _plot_confusion(cm: np.ndarray, labels, title: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title)
    vmax = cm.max() if cm.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > vmax / 2 else "black", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name("." + path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def score(exp, data, checkpoint=None, results_md=None, tag=None, device="cpu") -> dict:
    """Score ``exp`` on ``data``; returns the results dict written to results.json."""
    exp, data = Path(exp), Path(data)
    model, config, task = load_model_from_exp(exp, checkpoint, map_location=device)
    model.to(device)
    check_model_finite(model, str(exp))
    check_data_dir(data, bool(config["data"]["feats"]))
    check_frontend(config, task, data, exp_dir=exp)
    check_labels_present(data, list(task.factors))
    loader = build_dataloader(config, data, task=task, train=False)
    preds = {f: [] for f in task.factors}
    refs = {f: [] for f in task.factors}
    utts = []
    with torch.no_grad():
        for batch in loader:
            check_batch_finite(batch, str(data))
            if not utts:
                check_frontend(config, task, data, first_feats=batch["feats"][0], exp_dir=exp)
            batch = move_batch(batch, device)
            out = model.predict(batch)
            utts.extend(batch["utt_ids"])
            for f in task.factors:
                if f not in out:
                    raise KeyError(f"model.predict returned no prediction for factor {f!r} (got {sorted(out)})")
                preds[f].extend(out[f].cpu().tolist())
                refs[f].extend(batch["labels"][f].cpu().tolist())
    set_name = data.name
    out_dir = exp / (f"decode_{set_name}" if checkpoint in (None, "model.pt") else
                     f"decode_{set_name}_{Path(checkpoint).stem}")
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = {}
    for f, vocab in task.factors.items():
        y = np.asarray(refs[f])
        p = np.asarray(preds[f])
        write_kv(out_dir / f"utt2pred_{f}", {u: vocab[k] for u, k in zip(utts, p)})
        known = y != IGNORE_INDEX
        if not known.any():
            logger.warning("%s: no utterance of %d has a %s label (no %s/utt2%s line): %s is not scored",
                           data, len(utts), f, data, f, f)
            continue
        metrics[f] = factor_report(out_dir, f, vocab, y[known], p[known], set_name)
    if not metrics:
        raise DataError(f"{data}: no utterance has a known label for any factor {list(task.factors)}")
    enc = config["model"].get("encoder")
    result = {"method": tag or config["model"]["name"],
              "backbone": enc.get("name") if isinstance(enc, dict) else str(enc or "-"),
              "test_set": set_label(data), "metrics": metrics}
    with atomic_write(out_dir / "results.json") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    if results_md:
        update_results_md(results_md, exp.parent)
    return result
