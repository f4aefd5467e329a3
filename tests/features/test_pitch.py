"""F0 / energy per log-mel frame: frame count and centres of the front-end, a known tone, energy
against a per-frame numpy loop, and the extraction into prosody.scp (any nj, same archive)."""
import kaldiio
import numpy as np
import pytest
import soundfile as sf

from parastyle.features.frontend import build_frontend
from parastyle.features.pitch import energy_per_frame, extract_prosody, f0_per_frame, num_frames


def test_f0_of_a_tone_on_the_frontend_frames():
    sr, hop = 22050, 256
    t = np.arange(int(1.3 * sr)) / sr
    x = 0.4 * np.sin(2 * np.pi * 180.0 * t)
    x[: sr // 4] = 0.0                                          # leading silence: unvoiced
    f0 = f0_per_frame(x, sr, hop)
    fe = build_frontend({"type": "logmel"})
    import torch
    assert f0.shape[0] == num_frames(x.size, hop) == fe(torch.from_numpy(x).float()).shape[0]
    mid = f0[int(0.5 * sr / hop): int(1.1 * sr / hop)]
    assert np.all(np.abs(mid - 180.0) < 2.0)
    assert np.all(f0[: int(0.2 * sr / hop)] == 0.0)


def test_energy_against_a_frame_loop():
    rng = np.random.RandomState(0)
    x = rng.randn(5000).astype(np.float32)
    n_fft, hop = 1024, 256
    e = energy_per_frame(x, n_fft=n_fft, hop=hop, win_length=n_fft)
    pad = np.pad(x, (n_fft // 2, n_fft // 2), mode="reflect")
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)   # periodic Hann
    ref = [np.linalg.norm(np.abs(np.fft.rfft(pad[i * hop: i * hop + n_fft] * win)))
           for i in range(1 + x.size // hop)]
    np.testing.assert_allclose(e, np.array(ref), rtol=1e-4)


def test_extract_prosody_any_nj(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    rng = np.random.RandomState(1)
    utts = {}
    for i in range(5):
        w = tmp_path / f"u{i}.wav"
        sf.write(w, 0.3 * np.sin(2 * np.pi * (120 + 30 * i) * np.arange(8000 + 1000 * i) / 22050)
                 + 0.01 * rng.randn(8000 + 1000 * i), 22050)
        utts[f"u{i}"] = str(w)
    (d / "wav.scp").write_text("".join(f"{u} {w}\n" for u, w in utts.items()))
    (d / "utt2spk").write_text("".join(f"{u} {u}\n" for u in utts))
    (d / "utt2num_frames").write_text("".join(f"{u} {1 + (8000 + 1000 * i) // 256}\n" for i, u in enumerate(utts)))
    conf = {"type": "logmel"}
    assert extract_prosody(d, tmp_path / "d1", conf, nj=1) == 5
    one = {k: v.copy() for k, v in kaldiio.load_scp(str(d / "prosody.scp")).items()}
    assert extract_prosody(d, tmp_path / "d2", conf, nj=2) == 5
    two = dict(kaldiio.load_scp(str(d / "prosody.scp")))
    for i, u in enumerate(utts):
        assert one[u].shape == (1 + (8000 + 1000 * i) // 256, 2)
        np.testing.assert_array_equal(one[u], two[u])
        x, _ = sf.read(utts[u], dtype="float32")
        np.testing.assert_allclose(one[u][:, 0], f0_per_frame(x, 22050, 256), rtol=1e-5)
    (d / "utt2num_frames").write_text("u0 3\nu1 1\nu2 1\nu3 1\nu4 1\n")
    from parastyle.fileio import DataError
    with pytest.raises(DataError, match="'u0': 32 prosody frames but utt2num_frames says 3"):
        extract_prosody(d, tmp_path / "d3", conf, nj=1)
    assert not (d / "prosody.scp").exists()
