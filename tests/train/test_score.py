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


# ---------------------------------------------------------------------- refusing a wrong number
import kaldiio  # noqa: E402
import yaml  # noqa: E402

from parastyle.features.frontend import build_frontend  # noqa: E402
from parastyle.fileio import DataError, write_kv  # noqa: E402

FBANK6 = {"type": "fbank", "sample_rate": 16000, "num_mel_bins": 6}
LOGMEL6 = {"type": "logmel", "sample_rate": 16000, "n_fft": 400, "win_length": 400, "hop_length": 160,
           "n_mels": 6}


def _record_frontend(d, conf):
    """What extract_feats records next to the features it writes."""
    fe = build_frontend(conf)
    with open(d / "feats_conf.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(fe.to_config(), f, sort_keys=False)
    (d / "frame_shift").write_text(f"{fe.frame_shift_s}\n")


@pytest.fixture(scope="module")
def scored_exp(tmp_path_factory):
    """One tiny exp trained on fbank-described features, shared by the refusal tests below."""
    root = tmp_path_factory.mktemp("score_refusals")
    train = make_datadir(root / "data", "train", n=24, unlabelled_emotion=(5, 11))
    dev = make_datadir(root / "data", "dev", n=9, seed=1)
    _record_frontend(train, FBANK6)
    _record_frontend(dev, FBANK6)
    exp = root / "exp" / "ce"
    Trainer(tiny_config(), train, dev, root / "data" / "lang", exp).run()
    return exp, root


def _test_dir(root, request, **kw):
    """A test dir of its own for each test (the exp is shared)."""
    name = "t_" + request.node.name.replace("test_score_", "")[:40]
    return make_datadir(root / "data", name, lang=False, **kw)


def test_score_refuses_features_of_another_frontend_with_the_same_dim(scored_exp, capsys, request):
    """6-dim log-mel test features for an exp trained on 6-dim fbank: same shape, other numbers."""
    exp, root = scored_exp
    test = _test_dir(root, request, n=10, seed=2)
    _record_frontend(test, FBANK6)
    assert score_main(["--exp", str(exp), "--data", str(test)]) == 0          # the training front-end: scored
    _record_frontend(test, LOGMEL6)
    assert score_main(["--exp", str(exp), "--data", str(test)]) == 1
    err = capsys.readouterr().err
    assert "another front-end" in err and "'fbank' (training) vs 'logmel' (test)" in err
    assert str(root / "data" / "train" / "feats_conf.yaml") in err and str(test / "feats_conf.yaml") in err
    # same front-end type, one parameter changed
    _record_frontend(test, dict(FBANK6, frame_length_ms=50.0))
    with pytest.raises(DataError, match=r"frame_length_ms: 25.0 \(training\) vs 50.0 \(test\)"):
        from parastyle.evaluate.scoring import score
        score(exp, test)
    # no record of the test features' front-end: unknown, refused
    (test / "feats_conf.yaml").unlink()
    with pytest.raises(DataError, match="no feats_conf.yaml"):
        score(exp, test)
    # a frame shift that differs from the training one (features recorded without feats_conf, e.g. SSL dumps)
    _record_frontend(test, FBANK6)
    (test / "frame_shift").write_text("0.02\n")
    with pytest.raises(DataError, match=r"frame_shift: 0.02 s.*0.01 s"):
        score(exp, test)


def test_score_refuses_when_the_training_front_end_changed_after_training(scored_exp, request):
    """The training dir re-extracted with another front-end: its feats_conf.yaml no longer describes
    the exp's features (identity.yaml), so a test dir matching it is not accepted either."""
    from parastyle.evaluate.scoring import score
    exp, root = scored_exp
    if not (exp / "identity.yaml").is_file():
        pytest.skip("the trainer writes no identity.yaml")
    test = _test_dir(root, request, n=10, seed=2)
    _record_frontend(test, LOGMEL6)
    _record_frontend(root / "data" / "train", LOGMEL6)
    with pytest.raises(DataError, match=r"train/feats_conf.yaml: changed since .* was trained"):
        score(exp, test)
    _record_frontend(root / "data" / "train", FBANK6)          # restored: byte-identical record
    _record_frontend(test, FBANK6)
    assert score(exp, test)["metrics"]


def test_score_refuses_another_feature_dim(scored_exp, request):
    from parastyle.evaluate.scoring import score
    exp, root = scored_exp
    test = _test_dir(root, request, n=6, dim=8, seed=3)
    _record_frontend(test, FBANK6)       # a wrong record: the matrices themselves are 8-dim
    with pytest.raises(DataError, match="dimension 8.*dimension 6"):
        score(exp, test)


def test_score_stops_at_a_non_finite_feature_naming_the_utterance(scored_exp, request):
    """Before: the NaN utterance was predicted as class 0 and counted in the UAR."""
    from parastyle.evaluate.scoring import score
    exp, root = scored_exp
    test = _test_dir(root, request, n=10, seed=2)
    _record_frontend(test, FBANK6)
    feats = {u: np.array(kaldiio.load_mat(v)) for u, v in read_kv(test / "feats.scp").items()}
    bad = sorted(feats)[4]
    feats[bad][3, 1] = np.nan
    kaldiio.save_ark(str(test / "feats2.ark"), feats, scp=str(test / "feats.scp"))
    with pytest.raises(DataError, match=f"input features of utterance '{bad}' is not finite"):
        score(exp, test)
    feats[bad][3, 1] = np.inf
    kaldiio.save_ark(str(test / "feats3.ark"), feats, scp=str(test / "feats.scp"))
    with pytest.raises(DataError, match=f"'{bad}' is not finite"):
        score(exp, test)
    assert not (exp / f"decode_{test.name}" / "results.json").exists()


def test_score_refuses_a_checkpoint_with_non_finite_weights(scored_exp, request):
    import torch

    from parastyle.evaluate.scoring import score
    from parastyle.train.checkpoint import load_checkpoint, save_checkpoint
    exp, root = scored_exp
    test = _test_dir(root, request, n=10, seed=2)
    _record_frontend(test, FBANK6)
    state = load_checkpoint(exp / "model.pt")
    name = next(k for k, v in state["model"].items() if v.dtype.is_floating_point and v.numel() > 1)
    state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    save_checkpoint(exp / "nan.pt", state)
    with pytest.raises(DataError, match=f"model tensor '{name}' holds non-finite"):
        score(exp, test, checkpoint="nan.pt")


def test_score_refuses_an_empty_factor_file(scored_exp, request):
    """Before: an empty utt2emotion meant 'no emotion label known' and the factor silently vanished."""
    from parastyle.evaluate.scoring import score
    exp, root = scored_exp
    test = _test_dir(root, request, n=10, seed=2)
    _record_frontend(test, FBANK6)
    (test / "utt2emotion").write_text("")
    with pytest.raises(DataError, match=r"utt2emotion: the file is empty"):
        score(exp, test)


def test_score_warns_with_counts_about_a_factor_without_test_label(scored_exp, caplog, request):
    from parastyle.evaluate.scoring import score
    exp, root = scored_exp
    test = _test_dir(root, request, n=10, seed=2)
    _record_frontend(test, FBANK6)
    (test / "utt2emotion").unlink()                            # every emotion label unknown
    with caplog.at_level("WARNING"):
        res = score(exp, test)
    assert set(res["metrics"]) == {"gender"}
    assert "no utterance of 10 has a emotion label" in caplog.text


def test_training_refuses_a_factor_without_labelled_utterance(corpus, tmp_path, caplog):
    from parastyle.train.build import build_task_info, check_factor_coverage
    from parastyle.train.config import load_config
    train, dev, lang = corpus
    config = load_config(None, [("data.factors", ["emotion", "gender"])])
    counts = check_factor_coverage(train, {"emotion": read_list(lang / "emotion.txt")})
    emo = read_kv(train / "utt2emotion")
    assert counts == {"emotion": {e: sum(v == e for v in emo.values()) for e in read_list(lang / "emotion.txt")}}
    (train / "utt2gender").write_text("")
    with pytest.raises(DataError, match="utt2gender: the file is empty: factor 'gender' has no labelled"):
        build_task_info(config, train, lang)
    write_kv(train / "utt2gender", {"someone-else": "male"})
    with pytest.raises(DataError, match="no line labels an utterance of utt2spk"):
        build_task_info(config, train, lang)
    (train / "utt2gender").unlink()
    with pytest.raises(DataError, match="utt2gender: file not found: factor 'gender'"):
        build_task_info(config, train, lang)
    # a class without a training utterance: a warning with the counts, training goes on
    write_kv(train / "utt2gender", {u: "female" for u in read_kv(train / "utt2spk")})
    with caplog.at_level("WARNING"):
        build_task_info(config, train, lang)
    assert "1 of 2 gender class(es) have no training utterance: ['male']" in caplog.text
    assert "female=24, male=0" in caplog.text
