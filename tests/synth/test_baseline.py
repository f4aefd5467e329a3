"""Tests of the synthetic corpus's feature + SVM baseline (egs/synth/local/baseline.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

BASELINE = Path(__file__).resolve().parents[2] / "egs" / "synth" / "local" / "baseline.py"


@pytest.fixture(scope="module")
def baseline():
    spec = importlib.util.spec_from_file_location("synth_baseline", BASELINE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("f0", [95.0, 180.0, 310.0])
def test_autocorr_f0_finds_the_period_of_a_harmonic_tone(baseline, f0):
    sr = 22050
    t = torch.arange(sr) / sr
    x = sum(torch.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)).float()
    x[: sr // 4] = 0.0  # a silent quarter second must be unvoiced
    est, voiced, _ = baseline.autocorr_f0(x, sr)
    frame_start = torch.arange(len(est)) * baseline.HOP
    assert not voiced[frame_start + baseline.FRAME <= sr // 4].any()
    assert voiced[frame_start > sr // 4].all()
    assert torch.median(est[voiced]).item() == pytest.approx(f0, rel=0.02)


def test_features_are_finite_and_sized(baseline):
    rng = np.random.default_rng(0)
    sr = 22050
    t = np.arange(2 * sr) / sr
    x = 0.3 * np.sin(2 * np.pi * 140 * t) * (t > 0.3) + 0.01 * rng.standard_normal(len(t))
    v = baseline.utterance_features(x.astype(np.float32), sr)
    assert v.shape == (74,) and np.isfinite(v).all()
    assert np.exp(v[2]) == pytest.approx(140, rel=0.03)  # median log-F0


def test_speaker_folds_are_disjoint_cover_and_stratified(baseline):
    speakers, strata = [], []
    for i in range(30):
        stratum = ("en" if i % 3 == 0 else "de" if i % 3 == 1 else "fr", "m" if i % 2 else "f")
        for _ in range(4):
            speakers.append(f"s{i:02d}")
            strata.append(stratum)
    folds = baseline.speaker_folds(speakers, strata, 5, seed=0)
    assert np.sum(folds, axis=0).tolist() == [1] * len(speakers)  # each utterance tested once
    spk = np.array(speakers)
    seen = set()
    for test in folds:
        test_spk, train_spk = set(spk[test]), set(spk[~test])
        assert test_spk and not test_spk & train_spk and not test_spk & seen
        seen |= test_spk
        langs = {strata[i][0] for i in np.flatnonzero(test)}
        assert langs == {"en", "de", "fr"}
    with pytest.raises(Exception, match="speakers"):
        baseline.speaker_folds(["a", "b"], [0, 0], 5, seed=0)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_baseline_runs_on_a_small_corpus(baseline, corpus):
    out, _ = corpus
    res = baseline.run_baseline(out, num_folds=2, seed=0)
    assert set(res["uar_mean"]) == {"emotion", "gender", "age", "language"}
    assert all(0.0 <= v <= 1.0 for v in res["uar_mean"].values())
    assert sum(res["n_test_per_fold"]) == res["num_utts"] == 40
