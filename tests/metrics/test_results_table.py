"""RESULTS.md table: set paths relative to data/, nested exp dirs, pooled and mean +- std rows of folds."""
from __future__ import annotations

import json

import numpy as np
import pytest

from parastyle.metrics.results_table import (collect_results, cross_validation_rows, exp_root_of, render_table,
                                             set_label, update_results_md)


def test_set_label_is_the_path_below_data():
    assert set_label("data/fold3/test") == "fold3/test"
    assert set_label("/x/egs/c/style1/data/test") == "test"
    assert set_label("/x/data/y/data/fold1/dev") == "fold1/dev"
    assert set_label("/tmp/sets/test") == "test"
    assert exp_root_of("/r/exp/ce") .name == "exp" and str(exp_root_of("/r/other")) == "/r/other"


def write_decode(d, method, test_set, factor, labels, ref, hyp):
    d.mkdir(parents=True)
    idx = {lab: i for i, lab in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=int)
    for r, h in zip(ref, hyp):
        cm[idx[r], idx[h]] += 1
    with open(d / f"confusion_{factor}.csv", "w") as f:
        f.write("reference\\predicted," + ",".join(labels) + "\n")
        for lab, row in zip(labels, cm):
            f.write(lab + "," + ",".join(map(str, row)) + "\n")
    recall = [np.mean([h == c for r, h in zip(ref, hyp) if r == c]) for c in labels if c in ref]
    (d / "results.json").write_text(json.dumps({"method": method, "backbone": "tdnn", "test_set": test_set,
                                                "metrics": {factor: {"balanced_accuracy": float(np.mean(recall))}}}))
    return float(np.mean(recall))


def test_pooled_row_is_the_uar_of_the_union_and_mean_std_over_folds(tmp_path):
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"]
    all_ref, all_hyp, per_fold = [], [], []
    for k, n in ((1, 9), (2, 14), (3, 5)):
        ref = list(rng.choice(labels, n))
        hyp = [r if rng.random() < 0.6 else str(rng.choice(labels)) for r in ref]
        per_fold.append(write_decode(tmp_path / "exp" / "ce" / f"fold{k}" / "decode_test", "ce", f"fold{k}/test",
                                     "emotion", labels, ref, hyp))
        all_ref += ref
        all_hyp += hyp
    # a single split elsewhere and an unrelated method on one fold only: no pooled row for those
    write_decode(tmp_path / "exp" / "sv" / "fold1" / "decode_test", "sv", "fold1/test", "emotion", labels,
                 ["a", "b"], ["a", "a"])
    results = collect_results(tmp_path / "exp")
    assert {r["test_set"] for r in results} == {"fold1/test", "fold2/test", "fold3/test"}
    rows = cross_validation_rows(results)
    assert [(r["method"], r["kind"]) for r in rows] == [("ce", "pooled"), ("ce", "mean_std")]
    pooled = np.mean([np.mean([h == c for r, h in zip(all_ref, all_hyp) if r == c]) for c in labels])
    assert rows[0]["metrics"]["emotion"]["balanced_accuracy"] == pytest.approx(pooled)
    assert rows[0]["metrics"]["emotion"]["n"] == 28
    assert rows[1]["metrics"]["emotion"]["balanced_accuracy"] == pytest.approx(np.mean(per_fold))
    assert rows[1]["std"]["emotion"] == pytest.approx(np.std(per_fold, ddof=1))
    md = tmp_path / "RESULTS.md"
    update_results_md(md, tmp_path / "exp" / "ce")         # any dir inside exp/: the whole exp/ is read
    text = md.read_text()
    assert f"| ce | tdnn | fold{{1,2,3}}/test pooled | {pooled:.3f} | {pooled:.3f} |" in text
    assert f"| ce | tdnn | fold{{1,2,3}}/test mean ± std | {np.mean(per_fold):.3f} ± {np.std(per_fold, ddof=1):.3f} |" in text
    assert "| sv | tdnn | fold1/test |" in text and "| sv | tdnn | fold{" not in text
    assert render_table(results).count("pooled") == 2    # the legend line and the row
