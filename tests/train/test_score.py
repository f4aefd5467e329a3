"""Scoring CLI: results.json format, metrics vs brute force, RESULTS.md regenerated without duplicates."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from parastyle.bin.score import main as score_main
from parastyle.fileio import read_kv, read_list
from parastyle.train.checkpoint import load_model_from_exp
from parastyle.train.trainer import Trainer

from conftest import make_datadir, tiny_config


def test_score_results_and_table(corpus, tmp_path):
    train, dev, lang = corpus
    exp_root = tmp_path / "exp"
    Trainer(tiny_config(), train, dev, lang, exp_root / "ce").run()
    test = make_datadir(tmp_path / "data", "test", n=10, seed=2, unlabelled_emotion=(3,), lang=False)
    md = tmp_path / "RESULTS.md"
    md.write_text("# Synthetic corpus\n\nHand-written notes.\n")
    assert score_main(["--exp", str(exp_root / "ce"), "--data", str(test), "--results_md", str(md)]) == 0
    out = exp_root / "ce" / "decode_test"
    res = json.loads((out / "results.json").read_text())
    assert set(res) == {"method", "backbone", "test_set", "metrics"}
    assert (res["method"], res["backbone"], res["test_set"]) == ("multitask_ce", "tdnn", "test")
    assert set(res["metrics"]) == {"emotion", "gender"}
    for f in ("emotion", "gender"):
        m = res["metrics"][f]
        assert set(m) == {"balanced_accuracy", "macro_f1", "accuracy", "n"} and isinstance(m["n"], int)
        vocab = read_list(lang / f"{f}.txt")
        ref = read_kv(test / f"utt2{f}")
        pred = read_kv(out / f"utt2pred_{f}")
        y = [vocab.index(ref[u]) for u in sorted(ref)]
        p = [vocab.index(pred[u]) for u in sorted(ref)]
        assert m["n"] == len(ref)
        assert m["accuracy"] == pytest.approx(np.mean(np.array(y) == np.array(p)))
        assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p))
        assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", labels=sorted(set(y) | set(p))))
        cm = np.loadtxt(out / f"confusion_{f}.csv", delimiter=",", skiprows=1, usecols=range(1, len(vocab) + 1))
        assert cm.sum() == len(ref) and np.trace(cm) == sum(a == b for a, b in zip(y, p))
        assert (out / f"confusion_{f}.png").stat().st_size > 0
    assert res["metrics"]["emotion"]["n"] == 9            # the unlabelled utterance is not counted

    # predictions through load_model_from_exp agree with the written ones
    model, config, task = load_model_from_exp(exp_root / "ce")
    assert not model.training and task.factors["gender"] == ["female", "male"]

    # rescoring + a second tagged method: one row per (method, backbone, test set), text kept
    assert score_main(["--exp", str(exp_root / "ce"), "--data", str(test), "--results_md", str(md)]) == 0
    assert score_main(["--exp", str(exp_root / "ce"), "--data", str(test), "--results_md", str(md),
                       "--tag", "ce_again", "--checkpoint", "step00000006.pt"]) == 0
    text = md.read_text()
    assert text.startswith("# Synthetic corpus\n\nHand-written notes.")
    rows = [l for l in text.splitlines() if l.startswith("| ") and "test |" in l]
    assert len(rows) == 2 and sum("| multitask_ce | tdnn | test |" in r for r in rows) == 1
    ba = res["metrics"]
    mean = (ba["emotion"]["balanced_accuracy"] + ba["gender"]["balanced_accuracy"]) / 2
    assert f"{mean:.3f} |" in [r for r in rows if "multitask_ce" in r][0]


def test_score_missing_model_reports(tmp_path, capsys):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "config.yaml").write_text("model: {name: multitask_ce}\n")
    (tmp_path / "exp" / "task.yaml").write_text("feat_dim: 3\n")
    assert score_main(["--exp", str(tmp_path / "exp"), "--data", str(tmp_path)]) == 1
    assert "model.pt" in capsys.readouterr().err
