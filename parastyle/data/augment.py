"""On-the-fly training augmentation, configured in YAML (``data.augment``), deterministic and resumable.

    data:
      augment:
        tempo: {min: 0.9, max: 1.1, prob: 0.5}            # waveform: tempo change keeping the pitch
        gain: {min_db: -6.0, max_db: 6.0, prob: 0.5}       # waveform: level change
        noise: {min_snr_db: 10.0, max_snr_db: 30.0, prob: 0.5, type: white}   # waveform: additive noise
        specaugment: {num_time_masks: 2, max_time_width: 20, num_freq_masks: 2, max_freq_width: 8}

Order: tempo, gain, noise on the waveform, then the front-end, CMVN, the training crop, then
SpecAugment on the features. Every random draw of an item comes from a generator seeded by
``(train.seed, epoch, item index)`` only, like the crop offset: the same seed gives the same
augmented batches with any number of loader workers, and a resumed run (epoch and position of
the sampler restored) sees exactly the items an uninterrupted run would have seen.

Why tempo and not Kaldi's speed perturbation: speed perturbation resamples the waveform, which
scales the pitch and the formants with the tempo (x 1.1 speed = +1.65 semitones). Pitch and
formants carry gender, age and emotion, the labels being learnt, so a resampled copy is not a
sample of the same class. Tempo perturbation here is WSOLA (waveform-similarity overlap-add,
512-sample Hann frames at half overlap, +-128-sample search): duration changes by ``1 / rate``,
pitch and spectral envelope stay.

Waveform augmentations need the waveform: they apply only to datasets that compute features on
the fly (``data.feats: false`` with a ``data.frontend``); with precomputed features
(``data.feats: true``) only SpecAugment is possible and asking for another is a configuration
error. Augmentation is applied to the training set only, never to dev or test.
"""
from __future__ import annotations

import math
import random
from typing import Any, Dict, Mapping, Optional

import torch

_KNOWN = {
    "tempo": {"min": 0.9, "max": 1.1, "prob": 1.0},
    "gain": {"min_db": -6.0, "max_db": 6.0, "prob": 1.0},
    "noise": {"min_snr_db": 10.0, "max_snr_db": 30.0, "prob": 1.0, "type": "white"},
    "specaugment": {"num_time_masks": 2, "max_time_width": 20, "num_freq_masks": 2, "max_freq_width": 8},
}
WAVEFORM_AUGMENTS = ("tempo", "gain", "noise")


class AugmentConfigError(ValueError):
    """``data.augment`` is malformed (the message names the key)."""


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of one item's draws: a function of (seed, epoch, index) only."""
    g = torch.Generator()
    g.manual_seed(random.Random(f"augment:{seed}:{epoch}:{index}").getrandbits(63))
    return g


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _coin(g: torch.Generator, prob: float) -> bool:
    return float(torch.rand((), generator=g)) < prob


def time_stretch(wav: torch.Tensor, rate: float, frame: int = 512, tolerance: int = 128) -> torch.Tensor:
    """WSOLA tempo change: ``(S,) -> (round(S / rate),)``, pitch kept (``rate > 1`` = faster).

    Waveform-similarity overlap-add (Verhelst & Roelands 1993): output frames of ``frame`` samples
    (Hann window, hop ``frame / 2``, so the windows sum to one) are cut from the input around
    ``k * hop * rate``, each shifted by the offset within ``+- tolerance`` samples whose segment best
    continues the previous one (maximum cross-correlation with the input that followed it). Whole
    pitch periods are repeated or skipped, never resampled, so pitch and formants stay.
    """
    if rate <= 0:
        raise ValueError(f"tempo rate must be > 0, got {rate}")
    if abs(rate - 1.0) < 1e-9 or wav.numel() < 2 * frame:
        return wav.clone()
    x = wav.detach().cpu().double().numpy()
    import numpy as np
    hop = frame // 2
    n_out = int(round(x.size / rate))
    n_frames = int(np.ceil(n_out / hop)) + 1
    pad = frame + tolerance + int(np.ceil(n_frames * hop * rate))
    xp = np.concatenate([np.zeros(tolerance), x, np.zeros(max(0, pad - x.size))])
    win = np.hanning(frame + 1)[:frame]            # periodic Hann: overlaps at hop frame/2 sum to 1
    y = np.zeros(n_frames * hop + frame)
    prev = tolerance                               # input start (in xp) of the previous frame
    for k in range(n_frames):
        ideal = tolerance + int(round(k * hop * rate))
        if k == 0:
            start = ideal
        else:
            target = xp[prev + hop: prev + hop + frame]          # natural continuation of the last frame
            lo, hi = max(0, ideal - tolerance), ideal + tolerance
            region = xp[lo: hi + frame]
            corr = np.correlate(region, target, mode="valid")    # (hi - lo + 1,)
            start = lo + int(np.argmax(corr))
        y[k * hop: k * hop + frame] += win * xp[start: start + frame]
        prev = start
    return torch.from_numpy(y[:n_out]).to(wav.dtype)


def pink_noise(n: int, g: torch.Generator) -> torch.Tensor:
    """Noise of power spectral density ~ 1/f (white noise shaped in the frequency domain)."""
    white = torch.randn(n, generator=g)
    spec = torch.fft.rfft(white)
    f = torch.arange(spec.numel(), dtype=torch.float32)
    f[0] = 1.0
    return torch.fft.irfft(spec / f.sqrt(), n=n)


def add_noise(wav: torch.Tensor, snr_db: float, g: torch.Generator, kind: str = "white") -> torch.Tensor:
    """``wav + noise`` with ``10 log10(P_wav / P_noise) = snr_db`` (powers = means over the utterance)."""
    noise = torch.randn(wav.numel(), generator=g) if kind == "white" else pink_noise(wav.numel(), g)
    p_sig = wav.pow(2).mean()
    p_noise = noise.pow(2).mean().clamp_min(1e-20)
    if p_sig <= 0:
        return wav.clone()
    scale = torch.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10)))
    return wav + scale * noise.to(wav.dtype)


def spec_augment(x: torch.Tensor, g: torch.Generator, num_time_masks: int, max_time_width: int,
                 num_freq_masks: int, max_freq_width: int) -> torch.Tensor:
    """SpecAugment masks on features ``(T, D)``: each mask has a width drawn uniformly in
    ``[0, max width]`` (clipped to the size) at a uniform start; masked cells are set to 0 (the
    mean after CMVN). Returns a new tensor."""
    x = x.clone()
    T, D = x.shape
    for _ in range(int(num_time_masks)):
        w = int(torch.randint(0, min(int(max_time_width), T) + 1, (), generator=g))
        s = int(torch.randint(0, T - w + 1, (), generator=g))
        x[s:s + w, :] = 0
    for _ in range(int(num_freq_masks)):
        w = int(torch.randint(0, min(int(max_freq_width), D) + 1, (), generator=g))
        s = int(torch.randint(0, D - w + 1, (), generator=g))
        x[:, s:s + w] = 0
    return x


class Augmenter:
    """The augmentations of ``data.augment`` (see the module docstring).

    ``waveform(wav, g)`` applies tempo, gain and noise; ``features(x, g)`` applies SpecAugment.
    ``rng(seed, epoch, index)`` gives the generator of an item.
    """

    def __init__(self, conf: Mapping[str, Any]):
        if not isinstance(conf, Mapping):
            raise AugmentConfigError(f"data.augment must be a mapping of {sorted(_KNOWN)}, got {conf!r}")
        self.conf: Dict[str, Dict[str, Any]] = {}
        for name, opts in conf.items():
            if name not in _KNOWN:
                raise AugmentConfigError(f"data.augment.{name}: unknown augmentation (known: {', '.join(_KNOWN)})")
            if opts is None or opts is False:
                continue
            opts = {} if opts is True else dict(opts)
            for k in opts:
                if k not in _KNOWN[name]:
                    raise AugmentConfigError(f"data.augment.{name}.{k}: unknown option (known: "
                                             f"{', '.join(_KNOWN[name])})")
            self.conf[name] = {**_KNOWN[name], **opts}
        t = self.conf.get("tempo")
        if t and not (0 < t["min"] <= t["max"]):
            raise AugmentConfigError(f"data.augment.tempo: need 0 < min <= max, got {t['min']}, {t['max']}")
        n = self.conf.get("noise")
        if n and n["type"] not in ("white", "pink"):
            raise AugmentConfigError(f"data.augment.noise.type must be white or pink, got {n['type']!r}")
        for name, c in self.conf.items():
            if "prob" in c and not 0 <= float(c["prob"]) <= 1:
                raise AugmentConfigError(f"data.augment.{name}.prob must be in [0, 1], got {c['prob']}")

    @property
    def needs_waveform(self) -> bool:
        return any(k in self.conf for k in WAVEFORM_AUGMENTS)

    @staticmethod
    def rng(seed: int, epoch: int, index: int) -> torch.Generator:
        return item_generator(seed, epoch, index)

    def waveform(self, wav: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        c = self.conf
        # every draw is made whether or not the augmentation fires, so the stream never shifts
        if "tempo" in c:
            fire, rate = _coin(g, c["tempo"]["prob"]), _uniform(g, c["tempo"]["min"], c["tempo"]["max"])
            if fire:
                wav = time_stretch(wav, rate)
        if "gain" in c:
            fire, db = _coin(g, c["gain"]["prob"]), _uniform(g, c["gain"]["min_db"], c["gain"]["max_db"])
            if fire:
                wav = wav * 10 ** (db / 20)
        if "noise" in c:
            fire = _coin(g, c["noise"]["prob"])
            snr = _uniform(g, c["noise"]["min_snr_db"], c["noise"]["max_snr_db"])
            noise_seed = int(torch.randint(0, 2 ** 62, (), generator=g))
            if fire:
                ng = torch.Generator()
                ng.manual_seed(noise_seed)
                wav = add_noise(wav, snr, ng, c["noise"]["type"])
        return wav

    def features(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        c = self.conf.get("specaugment")
        return spec_augment(x, g, **c) if c else x


def build_augmenter(conf: Optional[Mapping[str, Any]], use_feats: bool) -> Optional[Augmenter]:
    """``data.augment`` -> Augmenter (None when absent or empty); a configuration error when a
    waveform augmentation is asked for over precomputed features."""
    if not conf:
        return None
    aug = Augmenter(conf)
    if not aug.conf:
        return None
    if use_feats and aug.needs_waveform:
        raise AugmentConfigError(
            f"data.augment: {', '.join(k for k in WAVEFORM_AUGMENTS if k in aug.conf)} need(s) the waveform, but "
            f"data.feats is true (precomputed features): set data.feats: false with a data.frontend, or keep only "
            f"specaugment")
    return aug
