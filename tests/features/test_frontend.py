"""Front-ends against slow references written here: DFT + Slaney mel filterbank for log-mel,
frame counts, the peak bin of a pure tone, config round trips and bad configs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from parastyle.features.frontend import build_frontend


def _hz_to_mel_slaney(f):
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (math.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz_slaney(m):
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((m - 15.0) * math.log(6.4) / 27.0), m * 200.0 / 3)


def slow_logmel(x, sr, n_fft, win, hop, n_mels, floor=1e-5):
    """Reference: reflect-padded frames, periodic Hann, |DFT|, Slaney-normalised triangles, log."""
    pad = n_fft // 2
    xp = np.pad(x.astype(np.float64), (pad, pad), mode="reflect")
    n_frames = 1 + len(x) // hop
    window = np.zeros(n_fft)
    lo = (n_fft - win) // 2
    window[lo:lo + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    k = np.arange(n_fft // 2 + 1)
    dft = np.exp(-2j * np.pi * np.outer(k, np.arange(n_fft)) / n_fft)
    mags = np.stack([np.abs(dft @ (xp[t * hop:t * hop + n_fft] * window)) for t in range(n_frames)])
    freqs = k * sr / n_fft
    edges = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(0.0), _hz_to_mel_slaney(sr / 2), n_mels + 2))
    fb = np.zeros((len(k), n_mels))
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - left) / (centre - left)
        down = (right - freqs) / (right - centre)
        fb[:, m] = np.maximum(0, np.minimum(up, down)) * 2.0 / (right - left)
    return np.log(np.maximum(mags @ fb, floor))


def test_logmel_matches_slow_reference():
    rng = np.random.RandomState(0)
    sr, n = 22050, 3000
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / sr) + 0.05 * rng.randn(n)).astype(np.float32)
    fe = build_frontend({"type": "logmel", "sample_rate": sr, "n_fft": 512, "win_length": 400,
                         "hop_length": 128, "n_mels": 40})
    got = fe(torch.from_numpy(x)).numpy()
    ref = slow_logmel(x, sr, 512, 400, 128, 40)
    assert got.shape == ref.shape == (1 + n // 128, 40)
    assert np.abs(got - ref).max() < 2e-3


def test_paper_defaults_and_frame_counts():
    fe = build_frontend({"type": "logmel"})
    assert (fe.sample_rate, fe.dim, fe.hop_length) == (22050, 80, 256)
    assert fe.frame_shift_s == pytest.approx(256 / 22050)
    for n in (513, 1000, 22050):
        assert fe(torch.zeros(n)).shape == (fe.num_frames(n), 80)
    with pytest.raises(ValueError, match="at least 513 samples"):
        fe(torch.zeros(100))
    fb = build_frontend({"type": "fbank", "sample_rate": 16000})
    for n in (400, 401, 16000):
        assert fb(torch.randn(n) * 0.1).shape == (fb.num_frames(n), 80)
    raw = build_frontend({"type": "raw", "sample_rate": 16000})
    assert raw(torch.ones(500)).shape == (500, 1) and raw.frame_shift_s == 1 / 16000


@pytest.mark.parametrize("conf", [{"type": "logmel", "sample_rate": 16000, "n_fft": 512, "win_length": 512,
                                   "hop_length": 160, "n_mels": 64},
                                  {"type": "fbank", "sample_rate": 16000, "num_mel_bins": 64}])
def test_tone_peaks_in_its_mel_bin(conf):
    sr, f0 = 16000, 1500.0
    fe = build_frontend(conf)
    x = torch.from_numpy((0.5 * np.sin(2 * np.pi * f0 * np.arange(sr) / sr)).astype(np.float32))
    peak = int(fe(x)[5:-5].mean(0).argmax())
    # the bin whose centre is closest to f0 on the filterbank's mel scale (HTK for fbank, Slaney for logmel)
    if conf["type"] == "fbank":
        mel = lambda f: 1127.0 * np.log1p(np.asarray(f) / 700.0)  # noqa: E731
        lo, hi = 20.0, sr / 2
    else:
        mel, lo, hi = _hz_to_mel_slaney, 0.0, sr / 2
    centres = np.linspace(mel(lo), mel(hi), fe.dim + 2)[1:-1]
    assert abs(peak - int(np.argmin(np.abs(centres - mel(f0))))) <= 1


def test_config_round_trip_and_errors():
    fe = build_frontend({"type": "fbank", "num_mel_bins": 40, "dither": 0.0})
    again = build_frontend(fe.to_config())
    x = torch.randn(4000) * 0.1
    assert torch.equal(fe(x), again(x))
    with pytest.raises(ValueError, match="unknown frontend 'mfcc'"):
        build_frontend({"type": "mfcc"})
    with pytest.raises(ValueError, match="allowed keys"):
        build_frontend({"type": "logmel", "n_mel": 80})
    with pytest.raises(ValueError, match="'type' key"):
        build_frontend({"n_mels": 80})
