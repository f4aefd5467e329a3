"""TTS metrics against brute-force computations written here."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from parastyle.metrics import tts


def _dct_brute(x):
    n = len(x)
    out = []
    for k in range(n):
        s = sum(x[i] * math.cos(math.pi / n * (i + 0.5) * k) for i in range(n))
        out.append(s * math.sqrt((1.0 if k == 0 else 2.0) / n))
    return out


def test_mel_cepstrum_and_mcd_against_loops():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 10, generator=g)
    b = torch.randn(6, 10, generator=g)
    c = tts.mel_cepstrum(a, n_coeffs=4)
    for t in range(5):
        ref = _dct_brute(a[t].tolist())[1:5]
        assert np.allclose(c[t].numpy(), ref, atol=1e-9)
    # MCD over the 5 common frames (lengths differ by one: the longer is cut)
    tot = 0.0
    for t in range(5):
        ca, cb = _dct_brute(a[t].tolist())[1:5], _dct_brute(b[t].tolist())[1:5]
        tot += 10.0 / math.log(10.0) * math.sqrt(2.0 * sum((x - y) ** 2 for x, y in zip(ca, cb)))
    assert math.isclose(tts.mcd(a, b, n_coeffs=4), tot / 5, rel_tol=1e-9)
    assert tts.mcd(a, a, n_coeffs=4) == 0.0
    with pytest.raises(ValueError, match="not a copy synthesis"):
        tts.mcd(a, torch.randn(9, 10), n_coeffs=4, name="utt7")


def test_f0_stats_against_manual():
    f0 = [0, 100, 0, 110, 120, 130, 200, 0]
    v = sorted([100, 110, 120, 130, 200])

    def pct(q):                                # linear interpolation between order statistics
        pos = (len(v) - 1) * q
        lo, hi = math.floor(pos), math.ceil(pos)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)
    s = tts.f0_stats(f0)
    mean = sum(v) / 5
    assert math.isclose(s["mean_hz"], mean)
    assert math.isclose(s["std_hz"], math.sqrt(sum((x - mean) ** 2 for x in v) / 5))
    assert math.isclose(s["range_hz"], pct(0.95) - pct(0.05))
    assert math.isclose(s["range_st"], 12 * math.log2(pct(0.95) / pct(0.05)))
    assert s["voiced"] == 5
    assert tts.f0_stats([0, 0]) is None
    cls = tts.f0_class_stats({"a": [100, 100], "b": [200, 300], "c": [0], "d": [150]},
                             {"a": "sad", "b": "sad", "c": "sad", "d": "happy"})
    assert math.isclose(cls["sad"]["mean_hz"], (100 + 250) / 2) and cls["sad"]["n"] == 2
    assert cls["sad"]["unvoiced"] == 1 and cls["happy"]["n"] == 1


def test_f0_contour_of_a_tone():
    sr = 22050
    t = np.arange(sr) / sr
    f0 = tts.f0_contour(0.5 * np.sin(2 * np.pi * 180.0 * t), sr)
    voiced = f0[f0 > 0]
    assert voiced.size > 50 and abs(float(np.median(voiced)) - 180.0) < 2.0


def test_judge_accuracy_and_manipulation_against_counts():
    pred = {"emotion": {"u1": "happy", "u2": "sad", "u3": "happy", "u4": "sad"},
            "gender": {"u1": "male", "u2": "male", "u3": "female", "u4": "female"},
            "age": {"u1": "old", "u2": "old", "u3": "young", "u4": "old"}}
    target = {"emotion": {"u1": "happy", "u2": "happy", "u3": "happy", "u4": "sad"},
              "gender": {"u1": "male", "u2": "female", "u3": "female", "u4": "male"},
              "age": {"u1": "old", "u2": "old", "u3": "old", "u4": "old"}}
    acc = tts.judge_accuracy(pred["emotion"], target["emotion"])
    assert acc == {"accuracy": 3 / 4, "n": 4}
    with pytest.raises(KeyError, match="u9"):
        tts.judge_accuracy(pred["emotion"], {"u9": "sad"})
    man = tts.manipulation_scores(pred, target, {"u1": "emotion", "u2": "emotion", "u3": "gender", "u4": "gender"})
    # emotion moved on u1, u2: success 1/2; kept: gender 1/2 (u1 yes, u2 no), age 2/2 -> pooled 3/4
    assert man["emotion"]["success"] == 0.5 and man["emotion"]["preservation"] == 0.75
    assert man["emotion"]["preservation_per_factor"] == {"age": 1.0, "gender": 0.5}
    # gender moved on u3, u4: success 1/2 (u3); kept: emotion 2/2, age 1/2 -> 3/4
    assert man["gender"]["success"] == 0.5 and man["gender"]["preservation"] == 0.75


def test_cosine_and_selection_against_loops():
    a, b = [1.0, 2.0, 2.0], [2.0, 0.0, 1.0]
    assert math.isclose(tts.cosine(a, b), (2 + 0 + 2) / (3 * math.sqrt(5)))
    rankings = {"g1": ["c1", "c2", "c3"], "g2": ["d2", "d1"]}
    correct = {"c1": 1, "c2": 0, "c3": 0, "d1": 1, "d2": 0}
    s = tts.selection_scores(rankings, correct)
    assert s["chosen"] == (1 + 0) / 2 and s["worst"] == (0 + 1) / 2
    assert math.isclose(s["random"], (1 / 3 + 1 / 2) / 2)
    errors = {"c1": 2, "c2": 4, "c3": 0, "d1": 1, "d2": 3}
    e = tts.selection_error_rates(rankings, errors, {"g1": 10, "g2": 10})
    assert math.isclose(e["chosen"], (2 + 3) / 20) and math.isclose(e["worst"], (0 + 1) / 20)
    assert math.isclose(e["random"], (2 + 2) / 20)


def test_speaker_encoder_same_vs_other_voice():
    pytest.importorskip("resemblyzer")
    enc = tts.SpeakerEncoder()
    sr = 16000
    rng = np.random.RandomState(0)
    t = np.arange(sr * 2) / sr

    def voice(f0):       # a crude harmonic "voice" with vibrato and amplitude modulation
        ph = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / sr
        x = sum(np.sin(k * ph) / k for k in range(1, 12)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)
        return (0.3 * x / np.abs(x).max() + 0.001 * rng.randn(t.size)).astype(np.float32)
    e1, e1b, e2 = enc.embed(voice(110), sr), enc.embed(voice(112), sr), enc.embed(voice(260), sr)
    assert e1.shape == (256,)
    assert math.isclose(tts.cosine(e1, e1b), float(np.dot(e1, e1b) / np.linalg.norm(e1) / np.linalg.norm(e1b)),
                        rel_tol=1e-6)
    assert tts.cosine(e1, e1b) > tts.cosine(e1, e2)
