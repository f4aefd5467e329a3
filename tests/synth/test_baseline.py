"""The synthetic corpus's headroom check (egs/synth/local/baseline.py) runs the shared egemaps_svm method."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

BASELINE = Path(__file__).resolve().parents[2] / "egs" / "synth" / "local" / "baseline.py"


@pytest.fixture(scope="module")
def baseline():
    spec = importlib.util.spec_from_file_location("synth_baseline", BASELINE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_baseline_is_speaker_independent_cv_of_the_shared_method(baseline, corpus, tmp_path):
    data, lang = corpus
    out = tmp_path / "res.json"
    assert baseline.main(["--data", str(data), "--lang", str(lang), "--num_folds", "2", "--work",
                          str(tmp_path / "cv"), "--cache", str(tmp_path / "cache"), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["per_fold"]) == {"emotion", "gender", "age", "language"} and res["num_utts"] == 40
    # each fold's exp is the egemaps_svm method; per-fold UARs and the pooled UAR from its predictions
    for f, vals in res["per_fold"].items():
        assert res["mean"][f] == pytest.approx(np.mean(vals))
        ref, hyp = [], []
        for k in (1, 2):
            dec = tmp_path / "cv" / "exp" / "egemaps_svm" / f"fold{k}" / "decode_test"
            r = json.loads((dec / "results.json").read_text())
            assert r["method"] == "egemaps_svm" and r["test_set"] == f"fold{k}/test"
            assert r["metrics"][f]["balanced_accuracy"] == pytest.approx(vals[k - 1])
            labels = dict(l.split() for l in (tmp_path / "cv" / "data" / f"fold{k}" / "test" / f"utt2{f}")
                          .read_text().splitlines())
            pred = dict(l.split() for l in (dec / f"utt2pred_{f}").read_text().splitlines())
            ref += list(labels.values())
            hyp += [pred[u] for u in labels]
        uar = np.mean([np.mean([h == c for r_, h in zip(ref, hyp) if r_ == c]) for c in sorted(set(ref))])
        assert res["pooled"][f] == pytest.approx(uar)
    # test speakers of the two folds are disjoint and cover the corpus
    spk = [set(l.split()[1] for l in (tmp_path / "cv" / "data" / f"fold{k}" / "test" / "utt2spk").read_text()
               .splitlines()) for k in (1, 2)]
    all_spk = set(l.split()[1] for l in (data / "utt2spk").read_text().splitlines())
    assert not spk[0] & spk[1] and spk[0] | spk[1] == all_spk
