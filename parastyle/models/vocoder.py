"""Vocoders: log-mel ``(B, T, 80)`` -> waveform ``(B, T * hop)``.

* ``hifigan`` (registered model): HiFi-GAN generator with multi-period (2, 3, 5, 7, 11) and multi-scale
  (3 scales) discriminators (:mod:`parastyle.nn.hifigan`), trained by the one trainer through its
  multi-optimizer phases (``train_phases = ("discriminator", "generator")``). Losses, as in the paper::

      d_loss = sum_k E[(1 - D_k(y))^2] + E[D_k(G(s))^2]                      (LSGAN, MPD + MSD)
      g_adv  = sum_k E[(1 - D_k(G(s)))^2]
      g_fm   = fm_weight  * sum_k sum_i E|D_k^i(y) - D_k^i(G(s))|             (fm_weight 2)
      g_mel  = mel_weight * E|phi(y) - phi(G(s))|                             (mel_weight 45)

  ``phi`` is the log-mel of the data front-end (``parastyle.features.frontend``, type logmel) that the
  acoustic model predicts, so the vocoder is trained on exactly the features it will be given.
  Validation (``phase=None``) vocodes whole utterances and reports ``mel_l1`` (unweighted, valid frames).
* Griffin-Lim (:class:`GriffinLimVocoder`): inverts the same front-end: ``exp`` of the log-mel,
  least-squares inverse of the front-end's own mel filterbank (clamped at 0), then torchaudio's
  Griffin-Lim with the front-end's STFT window / n_fft / hop / power.

Seam for synthesis and evaluation::

    voc = load_vocoder("griffin_lim" | "<exp dir of a trained hifigan>", device="cpu")
    wav = voc(mel (B, T, 80), lengths (B,))      # (B, T * hop) float in [-1, 1], zero beyond lengths * hop
    voc.sample_rate, voc.hop_length, voc.name
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn

from parastyle.fileio import DataError
from parastyle.models import MODELS
from parastyle.nn.hifigan import (HiFiGANGenerator, MultiPeriodDiscriminator, MultiScaleDiscriminator,
                                  discriminator_loss, feature_matching_loss, generator_adversarial_loss)

#: the ParaMETA front-end every vocoder of the toolkit consumes unless told otherwise
DEFAULT_FRONTEND: Dict[str, Any] = {"type": "logmel"}


def _build_logmel(conf: Optional[Dict[str, Any]]):
    from parastyle.features.frontend import LogMel, build_frontend
    fe = build_frontend(dict(conf or DEFAULT_FRONTEND))
    if not isinstance(fe, LogMel):
        raise ValueError(f"a vocoder needs a logmel front-end, got {fe.to_config()}")
    return fe


def batch_logmel(frontend, wav: torch.Tensor) -> torch.Tensor:
    """Log-mel of a batch ``wav (B, S)`` -> ``(B, 1 + S // hop, M)``, exactly as ``frontend(wav[b])``."""
    spec = frontend.mel(wav.float())                                          # (B, M, T)
    return torch.log(torch.clamp(spec, min=frontend.log_floor)).transpose(1, 2)


def frame_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``(B, steps)`` bool, True on the first ``lengths[b]`` positions."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def _check_mel(mel: torch.Tensor, lengths: Optional[torch.Tensor], n_mels: int):
    if mel.dim() != 3 or mel.shape[-1] != n_mels:
        raise ValueError(f"vocoder input must be a log-mel (B, T, {n_mels}), got shape {tuple(mel.shape)}")
    if lengths is None:
        lengths = torch.full((mel.shape[0],), mel.shape[1], dtype=torch.long, device=mel.device)
    lengths = lengths.to(mel.device).long()
    if lengths.shape != (mel.shape[0],) or bool((lengths < 1).any()) or bool((lengths > mel.shape[1]).any()):
        raise ValueError(f"lengths must be (B,) with 1 <= lengths <= T={mel.shape[1]}, got {lengths.tolist()}")
    return lengths


# ---------------------------------------------------------------------------- HiFi-GAN
@MODELS.register("hifigan")
class HiFiGAN(nn.Module):
    """HiFi-GAN generator + MPD + MSD; phased training (see the module docstring).

    Args:
        frontend: the logmel front-end config (default: ParaMETA's, 22,050 Hz / hop 256 / 80 bins).
        generator: :class:`HiFiGANGenerator` keyword arguments (default: the paper's V1).
        mpd_periods, mpd_channels: multi-period discriminator (paper: 2,3,5,7,11; 32,128,512,1024,1024).
        msd_scales, msd_channels: multi-scale discriminator (paper: 3; 128,128,256,512,1024,1024,1024).
        mel_weight, fm_weight: loss weights (paper: 45, 2).
    """

    train_phases = ("discriminator", "generator")

    def __init__(self, frontend: Optional[Dict[str, Any]] = None, generator: Optional[Dict[str, Any]] = None,
                 mpd_periods: Sequence[int] = (2, 3, 5, 7, 11),
                 mpd_channels: Sequence[int] = (32, 128, 512, 1024, 1024), msd_scales: int = 3,
                 msd_channels: Sequence[int] = (128, 128, 256, 512, 1024, 1024, 1024),
                 mel_weight: float = 45.0, fm_weight: float = 2.0):
        super().__init__()
        self.frontend = _build_logmel(frontend)
        self.frontend_conf = self.frontend.to_config()
        gconf = dict(generator or {})
        self.generator = HiFiGANGenerator(in_channels=self.frontend.dim, **gconf)
        if self.generator.hop_length != self.frontend.hop_length:
            raise ValueError(f"generator upsample rates {self.generator.upsample_rates} give hop "
                             f"{self.generator.hop_length} but the front-end hop is {self.frontend.hop_length}")
        self.mpd = MultiPeriodDiscriminator(mpd_periods, mpd_channels)
        self.msd = MultiScaleDiscriminator(msd_scales, msd_channels)
        self.mel_weight = float(mel_weight)
        self.fm_weight = float(fm_weight)
        self.sample_rate = self.frontend.sample_rate
        self.hop_length = self.frontend.hop_length

    @classmethod
    def from_config(cls, conf: Dict[str, Any], task) -> "HiFiGAN":
        conf = dict(conf)
        model = cls(**conf)
        if int(task.feat_dim) != model.frontend.dim:
            raise DataError(f"hifigan: the data gives {task.feat_dim}-dim features but model.frontend has "
                            f"{model.frontend.dim} mel bins")
        if int(task.sample_rate) != model.sample_rate or abs(float(task.frame_shift_s)
                                                             - model.hop_length / model.sample_rate) > 1e-9:
            raise DataError(f"hifigan: model.frontend ({model.frontend_conf}) differs from the data front-end "
                            f"(sample rate {task.sample_rate}, frame shift {task.frame_shift_s}); give both the "
                            f"same logmel settings")
        return model

    def phase_parameters(self, phase: str) -> List[nn.Parameter]:
        if phase == "generator":
            return list(self.generator.parameters())
        if phase == "discriminator":
            return list(self.mpd.parameters()) + list(self.msd.parameters())
        raise ValueError(f"hifigan: unknown phase {phase!r}; phases are {self.train_phases}")

    # ------------------------------------------------------------------ helpers
    def generate(self, mel: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``mel (B, T, M)`` -> ``(B, T * hop)`` (zero beyond ``lengths * hop``)."""
        lengths = _check_mel(mel, lengths, self.frontend.dim)
        return self.generator(mel.transpose(1, 2), lengths).squeeze(1)

    def _mel_l1(self, wav: torch.Tensor, wav_hat: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        ref = batch_logmel(self.frontend, wav)
        hyp = batch_logmel(self.frontend, wav_hat)
        m = frame_mask(lengths, ref.shape[1]).unsqueeze(-1).to(ref.dtype)
        return (torch.abs(ref - hyp) * m).sum() / (m.sum() * ref.shape[-1])

    def _discriminate(self, y: torch.Tensor):
        s1, f1 = self.mpd(y)
        s2, f2 = self.msd(y)
        return s1 + s2, f1 + f2

    def forward(self, batch: Dict[str, Any], phase: Optional[str] = None,
                cache: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """``batch``: ``mel (B, T, M)``, ``mel_lens (B,)``, ``wav (B, T * hop)``; see the module docstring."""
        mel, lens, wav = batch["mel"], batch["mel_lens"], batch["wav"]
        if wav.shape[1] != mel.shape[1] * self.hop_length:
            raise DataError(f"hifigan: wav has {wav.shape[1]} samples for {mel.shape[1]} mel frames "
                            f"(expected frames x hop = {mel.shape[1] * self.hop_length}); utterances "
                            f"{batch['utt_ids']}")
        if phase is None:
            wav_hat = self.generate(mel, lens)
            mel_l1 = self._mel_l1(wav, wav_hat, lens)
            return {"losses": {"g_mel": self.mel_weight * mel_l1}, "metrics": {"mel_l1": mel_l1.detach()}}
        y = wav.unsqueeze(1)
        if phase == "discriminator":
            wav_hat = self.generate(mel, lens)
            real, _ = self._discriminate(y)
            fake, _ = self._discriminate(wav_hat.detach().unsqueeze(1))
            d_loss = discriminator_loss(real, fake)
            metrics = {"d_real": torch.stack([r.mean() for r in real]).mean().detach(),
                       "d_fake": torch.stack([f.mean() for f in fake]).mean().detach()}
            return {"losses": {"d_loss": d_loss}, "metrics": metrics, "cache": {"wav_hat": wav_hat}}
        if phase == "generator":
            wav_hat = cache["wav_hat"] if cache and "wav_hat" in cache else self.generate(mel, lens)
            mel_l1 = self._mel_l1(wav, wav_hat, lens)
            with torch.no_grad():
                _, real_f = self._discriminate(y)
            fake, fake_f = self._discriminate(wav_hat.unsqueeze(1))
            losses = {"g_adv": generator_adversarial_loss(fake),
                      "g_fm": self.fm_weight * feature_matching_loss(real_f, fake_f),
                      "g_mel": self.mel_weight * mel_l1}
            return {"losses": losses, "metrics": {"mel_l1": mel_l1.detach()}}
        raise ValueError(f"hifigan: unknown phase {phase!r}; phases are {self.train_phases}")


# ---------------------------------------------------------------------------- inference seam
class Vocoder:
    """Callable ``(mel (B, T, M), lengths (B,)) -> wav (B, T * hop)`` in [-1, 1]."""

    name = ""
    sample_rate: int
    hop_length: int
    n_mels: int

    def __call__(self, mel: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        lengths = _check_mel(mel, lengths, self.n_mels)
        wav = self._vocode(mel, lengths)
        mask = frame_mask(lengths * self.hop_length, wav.shape[1]).to(wav.dtype)
        return torch.clamp(wav, -1.0, 1.0) * mask

    def _vocode(self, mel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class GriffinLimVocoder(Vocoder):
    """Zero-training baseline inverting the logmel front-end (see the module docstring)."""

    name = "griffin_lim"

    def __init__(self, frontend: Optional[Dict[str, Any]] = None, n_iter: int = 32, momentum: float = 0.99,
                 device="cpu"):
        fe = _build_logmel(frontend)
        self.frontend = fe
        self.sample_rate, self.hop_length, self.n_mels = fe.sample_rate, fe.hop_length, fe.dim
        spec = fe.mel.spectrogram
        self.n_fft, self.win_length, self.power = int(spec.n_fft), int(spec.win_length), float(spec.power)
        self.window = spec.window.detach().to(device)
        fb = fe.mel.mel_scale.fb.detach().double()                            # (F, M): mel = fb^T @ spec
        self.inverse_fb = torch.linalg.pinv(fb.T).float().to(device)          # (F, M)
        self.n_iter, self.momentum, self.device = int(n_iter), float(momentum), device

    def linear_spectrogram(self, logmel: torch.Tensor) -> torch.Tensor:
        """``(T, M)`` log-mel -> ``(F, T)`` non-negative linear spectrogram (least-squares inverse)."""
        mel = torch.exp(logmel.float()).T                                     # (M, T)
        return torch.clamp(self.inverse_fb @ mel, min=0.0)

    @torch.no_grad()
    def _vocode(self, mel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        import torchaudio.functional as AF
        out = torch.zeros(mel.shape[0], mel.shape[1] * self.hop_length, device=mel.device)
        for b in range(mel.shape[0]):
            n = int(lengths[b])
            spec = self.linear_spectrogram(mel[b, :n].to(self.device))
            # n centred frames describe n * hop samples; the STFT of n * hop samples has n + 1 frames:
            # the last frame is repeated so the inverse has exactly n * hop samples
            spec = torch.cat([spec, spec[:, -1:]], dim=1)
            wav = AF.griffinlim(spec, self.window, self.n_fft, self.hop_length, self.win_length, self.power,
                                self.n_iter, self.momentum, length=n * self.hop_length, rand_init=False)
            out[b, : n * self.hop_length] = wav.to(out.device)
        return out


class NeuralVocoder(Vocoder):
    """A trained :class:`HiFiGAN` exp (generator only, eval mode)."""

    def __init__(self, model: HiFiGAN, name: str, device="cpu"):
        self.model = model.to(device).eval()
        self.name = name
        self.device = device
        self.sample_rate, self.hop_length = model.sample_rate, model.hop_length
        self.n_mels = model.frontend.dim
        self.frontend_conf = model.frontend_conf

    @torch.no_grad()
    def _vocode(self, mel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model.generate(mel.to(self.device), lengths.to(self.device)).to(mel.device)


def load_vocoder(spec: str, device="cpu", frontend: Optional[Dict[str, Any]] = None, checkpoint=None) -> Vocoder:
    """``"griffin_lim"`` or the exp dir of a trained ``hifigan``.

    ``frontend``: the logmel config the caller's mel follows (default ParaMETA's); a vocoder exp trained
    on another front-end, or an exp of another model, is refused with an error naming the difference.
    """
    expected = _build_logmel(frontend).to_config()
    if spec == "griffin_lim":
        return GriffinLimVocoder(expected, device=device)
    exp = Path(spec)
    if not (exp / "config.yaml").is_file():
        raise DataError(f"vocoder {spec!r}: neither 'griffin_lim' nor an exp dir ({exp}/config.yaml not found)")
    from parastyle.train.checkpoint import load_model_from_exp
    from parastyle.train.config import read_saved_config
    name = read_saved_config(exp / "config.yaml")["model"]["name"]
    if name != "hifigan":
        raise DataError(f"{exp}: an exp of model {name!r}, not a vocoder (model 'hifigan')")
    model, _, _ = load_model_from_exp(exp, checkpoint, map_location=device)
    if model.frontend_conf != expected:
        diff = {k: (model.frontend_conf.get(k), expected.get(k)) for k in set(model.frontend_conf) | set(expected)
                if model.frontend_conf.get(k) != expected.get(k)}
        raise DataError(f"{exp}: the vocoder was trained on another front-end; (vocoder, expected) differ in {diff}")
    return NeuralVocoder(model, name=str(exp), device=device)
