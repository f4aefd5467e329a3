"""eGeMAPS + linear SVM baseline: features, C chosen on dev, scoring files, cache, identity refusal."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from parastyle.evaluate import egemaps_svm as es
from parastyle.fileio import DataError

SR = 16000


def make_set(root, name, speakers, rng):
    d = root / "data" / name
    d.mkdir(parents=True)
    wav, spk, emo = [], [], []
    for s in speakers:
        for i, (label, f0) in enumerate((("low", 120), ("high", 240), ("low", 130), ("high", 260))):
            u = f"{s}-u{i}"
            t = np.arange(int(0.5 * SR)) / SR
            x = sum(np.sin(2 * np.pi * h * f0 * (1 + 0.05 * rng.standard_normal()) * t) / h for h in range(1, 4))
            p = root / "wav" / f"{u}.wav"
            p.parent.mkdir(exist_ok=True)
            sf.write(str(p), (0.1 * x + 0.003 * rng.standard_normal(t.size)).astype(np.float32), SR)
            wav.append(f"{u} {p}")
            spk.append(f"{u} {s}")
            emo.append(f"{u} {label}")
    for fname, lines in (("wav.scp", wav), ("utt2spk", spk), ("utt2pitch", emo)):
        (d / fname).write_text("\n".join(sorted(lines)) + "\n")
    return d


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("eg")
    rng = np.random.default_rng(0)
    out = {n: make_set(root, n, spk, rng) for n, spk in (("train", ["a", "b", "c"]), ("dev", ["d"]),
                                                         ("test", ["e", "f"]), ("other", ["g", "h"]))}
    (root / "data" / "lang").mkdir()
    (root / "data" / "lang" / "pitch.txt").write_text("low\nhigh\n")
    return root, out


def test_features_are_opensmile_egemaps_functionals(sets):
    import opensmile
    root, d = sets
    utts, X = es.extract_egemaps(d["dev"], cache_dir=root / "cache")
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    wav = dict(line.split() for line in (d["dev"] / "wav.scp").read_text().splitlines())
    x, sr = sf.read(wav[utts[1]], dtype="float32")
    assert X.shape == (4, 88)
    np.testing.assert_allclose(X[1], smile.process_signal(x, sr).to_numpy().ravel(), rtol=1e-5, atol=1e-6)


def test_c_is_chosen_on_dev_and_scoring_writes_the_neural_layout(sets, tmp_path, monkeypatch):
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC
    root, d = sets
    exp = tmp_path / "exp" / "egemaps_svm"
    grid = [1e-4, 1e-2, 1.0]
    assert es.train(d["train"], d["dev"], root / "data" / "lang", exp, {"C_grid": grid},
                    cache_dir=root / "cache") == "done"
    rep = json.loads((exp / "train_report.json").read_text())["factors"]["pitch"]
    # reference: the same pipeline written out here
    _, Xtr = es.extract_egemaps(d["train"], root / "cache")
    _, Xdv = es.extract_egemaps(d["dev"], root / "cache")
    ytr = np.array([0, 1, 0, 1] * 3)
    ydv = np.array([0, 1, 0, 1])
    sc = StandardScaler().fit(Xtr)
    uars = {}
    for C in grid:
        p = LinearSVC(C=C, class_weight="balanced", max_iter=20000, random_state=0).fit(sc.transform(Xtr), ytr) \
            .predict(sc.transform(Xdv))
        uars[str(C)] = np.mean([np.mean(p[ydv == c] == c) for c in (0, 1)])
    assert rep["dev_uar"] == pytest.approx(uars)
    assert rep["chosen_C"] == float(max(grid, key=lambda C: (uars[str(C)], -C)))
    # scoring: results.json / confusion / utt2pred as the neural scorer writes them; cached features only
    es.extract_egemaps(d["test"], root / "cache")
    monkeypatch.setattr(es, "_smile", lambda: (_ for _ in ()).throw(AssertionError("recomputed")))
    r = es.score(exp, d["test"], results_md=tmp_path / "RESULTS.md", cache_dir=root / "cache")
    assert r["test_set"] == "test" and r["method"] == "egemaps_svm" and r["backbone"] == "egemaps"
    pred = dict(line.split() for line in (exp / "decode_test" / "utt2pred_pitch").read_text().splitlines())
    ref = dict(line.split() for line in (d["test"] / "utt2pitch").read_text().splitlines())
    uar = np.mean([np.mean([pred[u] == c for u in ref if ref[u] == c]) for c in ("low", "high")])
    assert r["metrics"]["pitch"]["balanced_accuracy"] == pytest.approx(uar)
    assert "| egemaps_svm | egemaps | test |" in (tmp_path / "RESULTS.md").read_text()


def test_finished_exp_is_reused_only_with_the_same_data(sets, tmp_path):
    root, d = sets
    exp = tmp_path / "exp"
    lang = root / "data" / "lang"
    es.train(d["train"], d["dev"], lang, exp, {"C_grid": [1.0]}, cache_dir=root / "cache")
    assert es.train(d["train"], d["dev"], lang, exp, {"C_grid": [1.0]}, cache_dir=root / "cache") == "already_done"
    with pytest.raises(es.ExpIdentityError, match="train_data .*utterance list differs"):
        es.train(d["other"], d["dev"], lang, exp, {"C_grid": [1.0]}, cache_dir=root / "cache")
    with pytest.raises(es.ExpIdentityError, match="config_hash"):
        es.train(d["train"], d["dev"], lang, exp, {"C_grid": [0.5]}, cache_dir=root / "cache")
    with pytest.raises(DataError, match="unknown option 'kernel'"):
        es.train(d["train"], d["dev"], lang, tmp_path / "e2", {"kernel": "rbf"})
