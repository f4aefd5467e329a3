"""Front-ends: waveform ``(S,)`` -> features ``(T, D)``, chosen by a YAML dict (``type: ...``).

``logmel``
    Log-mel spectrogram as ParaMETA uses it: 80 bins at 22,050 Hz, n_fft 1024, hop 256, window 1024
    (Hann), magnitude (``power: 1``) Slaney mel filters, ``log(max(x, 1e-5))``; frames centred
    (``T = 1 + S // hop``). Defaults reproduce that setting; every argument is a YAML key.
``fbank``
    Kaldi filterbank (``torchaudio.compliance.kaldi.fbank``): 25 ms / 10 ms frames, povey window,
    80 bins, ``T = 1 + (S - frame_length) // frame_shift``. The waveform is scaled to the 16-bit
    integer range first, as Kaldi reads wavs. ``dither`` defaults to 0 so features are reproducible.
``raw``
    The waveform itself as ``(S, 1)`` (SSL speech towers); one "frame" per sample.

Each front-end has ``sample_rate``, ``frame_shift_s``, ``dim``, ``min_samples`` (shorter input is
rejected by :func:`parastyle.data.audio.load_audio`), ``num_frames(S)`` and ``to_config()`` (the
dict that rebuilds it; saved next to the features as ``feats_conf.yaml``).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn

from parastyle.registry import Registry

FRONTENDS = Registry("frontend")


class Frontend(nn.Module):
    """Base class: ``forward(wav (S,)) -> (T, D)`` float32."""

    type_name = ""
    sample_rate: int
    frame_shift_s: float
    dim: int
    min_samples: int

    def num_frames(self, num_samples: int) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_config(self) -> Dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _check(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() != 1:
            raise ValueError(f"{self.type_name} front-end expects a mono waveform (S,), got shape {tuple(wav.shape)}")
        if wav.numel() < self.min_samples:
            raise ValueError(f"{self.type_name} front-end needs at least {self.min_samples} samples, got {wav.numel()}")
        return wav.float()


@FRONTENDS.register("logmel")
class LogMel(Frontend):
    """Log-mel spectrogram ``(T, n_mels)`` with ``T = 1 + S // hop_length`` (centred frames)."""

    type_name = "logmel"

    def __init__(self, sample_rate: int = 22050, n_fft: int = 1024, win_length: int = 1024,
                 hop_length: int = 256, n_mels: int = 80, f_min: float = 0.0, f_max: Optional[float] = None,
                 power: float = 1.0, log_floor: float = 1e-5, mel_scale: str = "slaney", norm: Optional[str] = "slaney"):
        super().__init__()
        import torchaudio
        if win_length > n_fft:
            raise ValueError(f"logmel: win_length {win_length} > n_fft {n_fft}")
        self.conf = dict(sample_rate=int(sample_rate), n_fft=int(n_fft), win_length=int(win_length),
                         hop_length=int(hop_length), n_mels=int(n_mels), f_min=float(f_min),
                         f_max=None if f_max is None else float(f_max), power=float(power),
                         log_floor=float(log_floor), mel_scale=mel_scale, norm=norm)
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.frame_shift_s = hop_length / sample_rate
        self.dim = int(n_mels)
        self.min_samples = n_fft // 2 + 1          # reflect padding of the centred STFT
        self.log_floor = float(log_floor)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
            f_min=f_min, f_max=f_max, n_mels=n_mels, power=power, center=True, pad_mode="reflect",
            norm=norm, mel_scale=mel_scale)

    def num_frames(self, num_samples: int) -> int:
        return 1 + int(num_samples) // self.hop_length

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = self.mel(self._check(wav))                       # (n_mels, T)
        return torch.log(torch.clamp(spec, min=self.log_floor)).transpose(0, 1).contiguous()

    def to_config(self) -> Dict[str, Any]:
        return {"type": "logmel", **self.conf}


@FRONTENDS.register("fbank")
class KaldiFbank(Frontend):
    """Kaldi log filterbank ``(T, num_mel_bins)`` (``snip_edges``: ``T = 1 + (S - win) // shift``)."""

    type_name = "fbank"

    def __init__(self, sample_rate: int = 16000, num_mel_bins: int = 80, frame_length_ms: float = 25.0,
                 frame_shift_ms: float = 10.0, dither: float = 0.0, low_freq: float = 20.0,
                 high_freq: float = 0.0, window_type: str = "povey", use_energy: bool = False):
        super().__init__()
        self.conf = dict(sample_rate=int(sample_rate), num_mel_bins=int(num_mel_bins),
                         frame_length_ms=float(frame_length_ms), frame_shift_ms=float(frame_shift_ms),
                         dither=float(dither), low_freq=float(low_freq), high_freq=float(high_freq),
                         window_type=window_type, use_energy=bool(use_energy))
        self.sample_rate = int(sample_rate)
        self.win = int(sample_rate * frame_length_ms / 1000)
        self.shift = int(sample_rate * frame_shift_ms / 1000)
        self.frame_shift_s = self.shift / sample_rate
        self.dim = int(num_mel_bins) + (1 if use_energy else 0)
        self.min_samples = self.win

    def num_frames(self, num_samples: int) -> int:
        return 1 + (int(num_samples) - self.win) // self.shift if num_samples >= self.win else 0

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        from torchaudio.compliance import kaldi
        c = self.conf
        x = self._check(wav).unsqueeze(0) * 32768.0
        return kaldi.fbank(x, num_mel_bins=c["num_mel_bins"], frame_length=c["frame_length_ms"],
                           frame_shift=c["frame_shift_ms"], dither=c["dither"], energy_floor=0.0,
                           low_freq=c["low_freq"], high_freq=c["high_freq"], window_type=c["window_type"],
                           use_energy=c["use_energy"], sample_frequency=float(self.sample_rate),
                           snip_edges=True)

    def to_config(self) -> Dict[str, Any]:
        return {"type": "fbank", **self.conf}


@FRONTENDS.register("raw")
class RawWaveform(Frontend):
    """The waveform as ``(S, 1)`` at ``sample_rate`` (for SSL speech towers)."""

    type_name = "raw"

    def __init__(self, sample_rate: int = 16000, min_samples: int = 400):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.frame_shift_s = 1.0 / self.sample_rate
        self.dim = 1
        self.min_samples = int(min_samples)

    def num_frames(self, num_samples: int) -> int:
        return int(num_samples)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self._check(wav).unsqueeze(-1)

    def to_config(self) -> Dict[str, Any]:
        return {"type": "raw", "sample_rate": self.sample_rate, "min_samples": self.min_samples}


def build_frontend(conf: Dict[str, Any]) -> Frontend:
    """Build a front-end from ``{"type": "logmel" | "fbank" | "raw", **arguments}``.

    Unknown types or arguments raise ValueError naming the allowed ones.
    """
    if not isinstance(conf, dict) or "type" not in conf:
        raise ValueError(f"front-end config must be a mapping with a 'type' key "
                         f"({', '.join(FRONTENDS.names())}), got {conf!r}")
    conf = dict(conf)
    kind = conf.pop("type")
    try:
        cls = FRONTENDS.get(kind)
    except KeyError as e:
        raise ValueError(str(e).strip('"')) from None
    try:
        return cls(**conf)
    except TypeError as e:
        import inspect
        allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        raise ValueError(f"front-end {kind!r}: {e}; allowed keys: {allowed}") from None
