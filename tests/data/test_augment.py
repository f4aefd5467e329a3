"""On-the-fly augmentation: each operation against a direct computation, determinism, resume, config errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from parastyle.data.augment import (AugmentConfigError, Augmenter, add_noise, build_augmenter, item_generator,
                                    spec_augment, time_stretch)

SR = 16000


def tone(f0: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(SR * seconds), dtype=torch.float32) / SR
    return 0.3 * torch.sin(2 * math.pi * f0 * t)


def peak_hz(x: torch.Tensor) -> float:
    spec = np.abs(np.fft.rfft(x.numpy() * np.hanning(x.numel())))
    return float(np.argmax(spec) * SR / x.numel())


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_tempo_changes_duration_and_keeps_pitch(rate):
    x = tone(220.0)
    y = time_stretch(x, rate)
    assert y.numel() == round(x.numel() / rate)
    assert peak_hz(y) == pytest.approx(220.0, abs=3.0)
    # Kaldi-style speed perturbation (resampling) would move the pitch to 220 * rate
    assert abs(peak_hz(y) - 220.0 * rate) > 30
    # the envelope of the stretched tone keeps its level (no phase cancellation)
    mid = y[y.numel() // 4: 3 * y.numel() // 4]
    assert mid.pow(2).mean().sqrt().item() == pytest.approx(0.3 / math.sqrt(2), rel=0.1)


def test_noise_has_the_requested_snr():
    x = tone(300.0)
    for kind in ("white", "pink"):
        g = torch.Generator().manual_seed(1)
        y = add_noise(x, 12.5, g, kind)
        noise = y - x
        snr = 10 * math.log10(x.pow(2).mean().item() / noise.pow(2).mean().item())
        assert snr == pytest.approx(12.5, abs=1e-3)
    # pink noise: more power below 1 kHz than white noise of the same total power
    g = torch.Generator().manual_seed(2)
    pink = add_noise(torch.ones(SR) * 0.1, 0.0, g, "pink") - 0.1
    spec = np.abs(np.fft.rfft(pink.numpy())) ** 2
    assert spec[1:1000].sum() > 0.6 * spec[1:].sum()


def test_spec_augment_masks_against_a_loop_reference():
    x = torch.randn(50, 12) + 5.0
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    y = spec_augment(x, g1, 2, 10, 2, 4)
    ref = x.clone()
    for axis, (n, width) in (("t", (2, 10)), ("f", (2, 4))):
        for _ in range(n):
            size = x.shape[0] if axis == "t" else x.shape[1]
            w = int(torch.randint(0, min(width, size) + 1, (), generator=g2))
            s = int(torch.randint(0, size - w + 1, (), generator=g2))
            for i in range(s, s + w):
                if axis == "t":
                    ref[i, :] = 0
                else:
                    ref[:, i] = 0
    assert torch.equal(y, ref)
    assert (y == 0).any()


def test_gain_in_db_and_draws_independent_of_which_augmentations_fire():
    x = tone(200.0, 0.2)
    aug = Augmenter({"gain": {"min_db": 6.0, "max_db": 6.0, "prob": 1.0}})
    y = aug.waveform(x, item_generator(0, 0, 0))
    assert torch.allclose(y, x * 10 ** (6 / 20))
    # with prob 0 nothing changes, and the generator has advanced by the same draws
    off = Augmenter({"gain": {"prob": 0.0}, "noise": {"prob": 0.0}, "tempo": {"prob": 0.0}})
    g_off, g_on = item_generator(0, 1, 2), item_generator(0, 1, 2)
    assert torch.equal(off.waveform(x, g_off), x)
    Augmenter({"gain": {"prob": 1.0}, "noise": {"prob": 1.0}, "tempo": {"prob": 1.0}}).waveform(x, g_on)
    assert torch.equal(torch.rand(3, generator=g_off), torch.rand(3, generator=g_on))


def test_config_errors_name_the_key():
    with pytest.raises(AugmentConfigError, match="data.augment.reverb"):
        Augmenter({"reverb": {}})
    with pytest.raises(AugmentConfigError, match="data.augment.gain.db"):
        Augmenter({"gain": {"db": 3}})
    with pytest.raises(AugmentConfigError, match="tempo, gain need"):
        build_augmenter({"tempo": {}, "gain": {}, "specaugment": {}}, use_feats=True)
    assert build_augmenter({"specaugment": {}}, use_feats=True) is not None
    assert build_augmenter(None, use_feats=True) is None


def _data_dir(tmp_path, n=6):
    d = tmp_path / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    lines_wav, lines_spk, lines_emo = [], [], []
    for i in range(n):
        utt = f"s{i % 2}-u{i}"
        p = tmp_path / f"{utt}.wav"
        sf.write(str(p), (0.2 * np.sin(2 * np.pi * (150 + 20 * i) * np.arange(8000) / SR)
                          + 0.01 * rng.standard_normal(8000)).astype(np.float32), SR)
        lines_wav.append(f"{utt} {p}")
        lines_spk.append(f"{utt} s{i % 2}")
        lines_emo.append(f"{utt} {'happy' if i % 2 else 'sad'}")
    for name, lines in (("wav.scp", lines_wav), ("utt2spk", lines_spk), ("utt2emotion", lines_emo)):
        (d / name).write_text("\n".join(sorted(lines)) + "\n")
    return d


def test_dataset_items_depend_only_on_seed_epoch_and_index(tmp_path):
    """Exact resume: an item is the same whatever was loaded before it (or in which worker)."""
    from parastyle.data.dataset import StyleDataset
    from parastyle.features.frontend import build_frontend

    d = _data_dir(tmp_path)
    conf = {"tempo": {"prob": 0.5}, "gain": {"prob": 0.5}, "noise": {"prob": 0.5},
            "specaugment": {"num_time_masks": 1, "max_time_width": 5, "num_freq_masks": 1, "max_freq_width": 4}}

    def make(seed=0):
        return StyleDataset(d, {"emotion": ["happy", "sad"]}, use_feats=False,
                            frontend=build_frontend({"type": "logmel", "sample_rate": SR, "n_mels": 20}),
                            seed=seed, augment=build_augmenter(conf, use_feats=False))

    a, b = make(), make()
    a.set_epoch(3)
    b.set_epoch(3)
    forward = [a[i]["feats"] for i in range(len(a))]
    backward = [b[i]["feats"] for i in reversed(range(len(b)))][::-1]
    for x, y in zip(forward, backward):
        assert torch.equal(x, y)
    b.set_epoch(4)
    assert not all(torch.equal(x, b[i]["feats"]) for i, x in enumerate(forward))
    c = make(seed=1)
    c.set_epoch(3)
    assert not all(torch.equal(x, c[i]["feats"]) for i, x in enumerate(forward))
    # with every augmentation at prob 0 and no masks, the features are exactly the frontend's
    none = StyleDataset(d, {"emotion": ["happy", "sad"]}, use_feats=False,
                        frontend=build_frontend({"type": "logmel", "sample_rate": SR, "n_mels": 20}),
                        augment=build_augmenter({"tempo": {"prob": 0}, "gain": {"prob": 0}, "noise": {"prob": 0}},
                                                use_feats=False))
    plain = StyleDataset(d, {"emotion": ["happy", "sad"]}, use_feats=False,
                         frontend=build_frontend({"type": "logmel", "sample_rate": SR, "n_mels": 20}))
    assert all(torch.equal(none[i]["feats"], plain[i]["feats"]) for i in range(len(plain)))


def test_training_config_builds_the_augmenter_for_train_only(tmp_path):
    from parastyle.train.build import build_dataset
    from parastyle.train.config import ConfigError, load_config

    d = _data_dir(tmp_path)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("data: {feats: false, frontend: {type: logmel, sample_rate: 16000, n_mels: 20}, "
                        "augment: {gain: {prob: 1.0, min_db: -3, max_db: -3}}}\n")
    cfg = load_config(str(cfg_path))
    factors = {"emotion": ["happy", "sad"]}
    assert build_dataset(cfg, d, factors, train=True).augment is not None
    assert build_dataset(cfg, d, factors, train=False).augment is None
    cfg["data"]["feats"] = True
    with pytest.raises(ConfigError, match="need"):
        build_dataset(cfg, d, factors, train=True)
