"""Style-conditioned non-autoregressive acoustic model (``model.name: fastspeech_style``).

phones --embedding + style--> FFT encoder ``h`` (B, N, H)
  - alignment: ``mu = W h`` in normalised mel space; monotonic alignment search over the Gaussian
    log-likelihood ``log N(y_t; mu_n, I)`` gives hard durations (Glow-TTS / Grad-TTS); the prior loss
    ``0.5 ||y_t - mu_a(t)||^2`` trains ``mu`` (and the encoder) to explain the frames;
  - duration predictor on ``h`` (detached, as Glow-TTS) regresses ``log(1 + d)`` of the MAS durations;
  - pitch / energy predictors regress the per-phone mean of log-F0 (voiced frames) and log-energy
    under the MAS durations, normalised by the config's mean/std; the targets (training) or the
    predictions (inference) are embedded (1-D conv, FastPitch) and added to ``h``;
  - length regulation repeats ``h`` by the durations; an FFT decoder predicts the log-mel (L1 loss).
    Options that make the small CPU model learn faster: ``phone_position`` adds to every frame a
    linear embedding of its relative position in its phone and the phone's log-duration (frames of
    one phone are otherwise identical decoder inputs); ``decoder_residual`` makes the decoder
    predict the residual over the aligned prior means ``mu`` (the per-phone mel estimate the
    alignment already learns); ``postnet_layers > 0`` adds a residual conv postnet (Tacotron 2 /
    FastSpeech 2) with its own L1 loss (``loss_weights.postnet``); ``loss_weights.delta > 0`` adds the L1 of
    the frame-to-frame differences of the final log-mel (penalises a mel blurred in time);
    ``frame_variance: [pitch, energy]`` (either or both) gives the decoder frame-level prosody: a frame-level
    predictor on the regulated states regresses every frame's normalised log-F0 (voiced frames, MSE,
    ``loss_weights.frame_pitch``) and its voicing (BCE, ``loss_weights.voicing``), and / or its normalised
    log-energy (MSE, ``loss_weights.frame_energy``); the decoder input gets a 1-D conv embedding of
    ``(log-F0 if voiced else 0, voiced[, log-energy])``: the reference frames' in training, the predicted
    ones in inference (the per-phone means leave the contour inside a phone, where the harmonics sit, to guess).
Utterance latent (``reference_encoder: {dim, channels, layers, weight}``, off by default): a conv encoder of the
reference log-mel, mean-pooled over time to a ``dim``-d tanh latent, is projected and added to the style
conditioning (the voice inside a style class: voice variant, vocal-tract length, pitch offset). A prior
(MLP on the detached style conditioning) regresses the latent (MSE, ``loss_weights.ref_prior``) and
stands in for it when there is no reference recording (text prompts, manipulated vectors). Training and
alignment use the target recording itself as the reference; synthesis from a speech prompt uses
``prior + weight (z_prompt - prior)`` (``weight`` < 1: an unseen speaker's latent pulled towards the
voices the decoder knows).
Adversarial training (``adversarial: {weight, fm_weight, segment_frames, channels}``, off by default):
a patch discriminator over random log-mel segments (:class:`parastyle.nn.tts_blocks.MelPatchDiscriminator`)
against the over-smoothing of an L1-trained mel; the model then declares the trainer's two phases
(``discriminator``, ``generator``; one optimizer each) and adds LSGAN and feature-matching losses to
the generator's reconstruction losses (see :meth:`FastSpeechStyle.forward`).
Style: ``style.type: vector`` -> ``LayerNorm + Linear`` of the style vector to ``cond_dim`` channels
(the ParaMETA authors' conditioning); ``speaker`` -> a speaker embedding table of the training speakers.
The conditioning is added to the phone embeddings and applied by FiLM in every FFT block and
variance predictor. The model predicts the front-end's raw log-mel (what the vocoder consumes):
internally ``(mel - mel_mean) / mel_std``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from parastyle.fileio import DataError
from parastyle.models import MODELS
from parastyle.nn.hifigan import discriminator_loss, feature_matching_loss, generator_adversarial_loss
from parastyle.nn.tts_blocks import (ConvPostnet, FFTStack, MelPatchDiscriminator, ReferenceEncoder, StyleConditioner,
                                     VariancePredictor, alignment_from_durations, average_by_duration,
                                     gaussian_log_likelihood, monotonic_alignment, phone_position_features,
                                     random_segments, sequence_mask)

LOG_ENERGY_FLOOR = 1e-4


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    while m.dim() < x.dim():
        m = m.unsqueeze(-1)
    denom = m.expand_as(x).sum().clamp(min=1.0)
    return (x * m).sum() / denom


def _delta_l1(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean ``|(x[t+1] - x[t]) - (y[t+1] - y[t])|`` over the frame pairs inside ``mask (B, T)`` and the bins:
    the L1 of the frame-to-frame differences, which an over-smoothed (time-blurred) mel misses."""
    pair = mask[:, 1:] & mask[:, :-1]
    d = ((x[:, 1:] - x[:, :-1]) - (y[:, 1:] - y[:, :-1])).abs()
    return _masked_mean(d, pair)


@MODELS.register("fastspeech_style")
class FastSpeechStyle(nn.Module):
    def __init__(self, num_phones: int, n_mels: int = 80, hidden: int = 192, filter_size: int = 768, heads: int = 2,
                 encoder_layers: int = 6, decoder_layers: int = 6, kernel_size: int = 3, dropout: float = 0.1,
                 cond_dim: int = 256, style_type: str = "vector", style_dim: int = 768,
                 speakers: Optional[Sequence[str]] = None, variance_filter: int = 256, variance_kernel: int = 3,
                 mel_mean: float = -6.0, mel_std: float = 2.5, pitch_mean: float = 5.3, pitch_std: float = 0.35,
                 energy_mean: float = 1.0, energy_std: float = 2.0,
                 loss_weights: Optional[Mapping[str, float]] = None, decoder_residual: bool = False,
                 phone_position: bool = False, postnet_layers: int = 0, postnet_channels: int = 256,
                 postnet_kernel: int = 5, adversarial: Optional[Mapping[str, Any]] = None,
                 frame_variance: Sequence[str] = (), reference_encoder: Optional[Mapping[str, Any]] = None):
        super().__init__()
        if style_type not in ("vector", "speaker"):
            raise ValueError(f"fastspeech_style: style.type must be vector or speaker, got {style_type!r}")
        self.n_mels, self.hidden, self.style_type = int(n_mels), int(hidden), style_type
        self.norm = dict(mel=(float(mel_mean), float(mel_std)), pitch=(float(pitch_mean), float(pitch_std)),
                         energy=(float(energy_mean), float(energy_std)))
        weights = {"mel": 1.0, "prior": 1.0, "duration": 1.0, "pitch": 1.0, "energy": 1.0, "postnet": 1.0,
                   "delta": 0.0, "frame_pitch": 1.0, "voicing": 1.0, "frame_energy": 1.0, "ref_prior": 1.0}
        unknown = set(loss_weights or {}) - set(weights)
        if unknown:
            raise ValueError(f"fastspeech_style: unknown loss_weights {sorted(unknown)} (known: {sorted(weights)})")
        weights.update({k: float(v) for k, v in (loss_weights or {}).items()})
        self.loss_weights = weights
        self.embed = nn.Embedding(num_phones, hidden, padding_idx=0)
        nn.init.normal_(self.embed.weight, 0.0, hidden ** -0.5)
        if style_type == "vector":
            self.style_dim = int(style_dim)
            self.conditioner = StyleConditioner(self.style_dim, cond_dim)
            self.speakers = None
        else:
            if not speakers:
                raise ValueError("fastspeech_style with style.type speaker needs the training speakers")
            self.speakers = list(speakers)
            self.speaker_index = {s: i for i, s in enumerate(self.speakers)}
            self.conditioner = nn.Embedding(len(self.speakers), cond_dim)
        self.cond_to_hidden = nn.Linear(cond_dim, hidden)
        self.encoder = FFTStack(hidden, filter_size, heads, encoder_layers, kernel_size, dropout, cond_dim)
        self.mu = nn.Linear(hidden, n_mels)
        self.duration = VariancePredictor(hidden, variance_filter, variance_kernel, dropout, cond_dim)
        self.pitch = VariancePredictor(hidden, variance_filter, variance_kernel, dropout, cond_dim)
        self.energy = VariancePredictor(hidden, variance_filter, variance_kernel, dropout, cond_dim)
        self.pitch_embed = nn.Conv1d(1, hidden, 3, padding=1)
        self.energy_embed = nn.Conv1d(1, hidden, 3, padding=1)
        self.decoder = FFTStack(hidden, filter_size, heads, decoder_layers, kernel_size, dropout, cond_dim)
        self.mel_out = nn.Linear(hidden, n_mels)
        self.decoder_residual = bool(decoder_residual)
        self.position = nn.Linear(2, hidden) if phone_position else None
        self.frame_variance = [str(v) for v in (frame_variance or ())]
        if (any(v not in ("pitch", "energy") for v in self.frame_variance)
                or len(set(self.frame_variance)) != len(self.frame_variance)):
            raise ValueError(f"fastspeech_style: frame_variance takes pitch and / or energy once each, got "
                             f"{self.frame_variance}")
        self.frame_predictor = None
        if self.frame_variance:
            ch = 2 * ("pitch" in self.frame_variance) + ("energy" in self.frame_variance)
            self.frame_predictor = VariancePredictor(hidden, variance_filter, variance_kernel, dropout, cond_dim,
                                                     out_dim=ch)
            self.frame_embed = nn.Conv1d(ch, hidden, 3, padding=1)
        self.ref_encoder = None
        if reference_encoder:
            ref = {"dim": 16, "channels": 128, "layers": 3, "weight": 1.0}
            unknown = set(reference_encoder) - set(ref)
            if unknown:
                raise ValueError(f"fastspeech_style: unknown reference_encoder keys {sorted(unknown)} (known: {sorted(ref)})")
            ref.update(reference_encoder)
            self.reference_weight = float(ref["weight"])
            self.ref_encoder = ReferenceEncoder(n_mels, int(ref["channels"]), int(ref["layers"]), int(ref["dim"]))
            self.ref_proj = nn.Linear(int(ref["dim"]), cond_dim)
            self.ref_prior = nn.Sequential(nn.Linear(cond_dim, cond_dim), nn.ReLU(), nn.Linear(cond_dim, int(ref["dim"])),
                                           nn.Tanh())
        self.postnet = (ConvPostnet(n_mels, int(postnet_channels), int(postnet_layers), int(postnet_kernel), dropout)
                        if int(postnet_layers) > 0 else None)
        self.discriminator = None
        if adversarial:
            adv = {"weight": 1.0, "fm_weight": 2.0, "segment_frames": 64, "channels": [32, 64, 128, 128]}
            unknown = set(adversarial) - set(adv)
            if unknown:
                raise ValueError(f"fastspeech_style: unknown adversarial keys {sorted(unknown)} (known: {sorted(adv)})")
            adv.update(adversarial)
            if int(adv["segment_frames"]) < 8:
                raise ValueError(f"fastspeech_style: adversarial.segment_frames must be >= 8, got {adv['segment_frames']}")
            self.discriminator = MelPatchDiscriminator(adv["channels"])
            self.adv_weight, self.fm_weight = float(adv["weight"]), float(adv["fm_weight"])
            self.segment_frames = int(adv["segment_frames"])
            self.train_phases = ("discriminator", "generator")

    def phase_parameters(self, phase: str) -> List[nn.Parameter]:
        """Adversarial training: the discriminator's parameters, or every other one (the generator)."""
        if self.discriminator is None:
            raise ValueError("fastspeech_style without model.adversarial trains in one phase")
        if phase == "discriminator":
            return list(self.discriminator.parameters())
        if phase == "generator":
            d_ids = {id(p) for p in self.discriminator.parameters()}
            return [p for p in self.parameters() if id(p) not in d_ids]
        raise ValueError(f"fastspeech_style: unknown phase {phase!r}; phases are {self.train_phases}")

    @classmethod
    def from_config(cls, conf: Mapping[str, Any], task) -> "FastSpeechStyle":
        from parastyle.text.phonemes import PhoneVocab
        conf = dict(conf)
        style = dict(conf.pop("style", None) or {"type": "vector", "dim": 768})
        if not task.lang_dir:
            raise DataError("fastspeech_style needs the exp's lang dir (data/lang with phones.txt)")
        vocab = PhoneVocab.read(Path(task.lang_dir) / "phones.txt")
        if task.feat_dim != conf.get("n_mels", task.feat_dim):
            raise DataError(f"fastspeech_style: features have {task.feat_dim} bins but model.n_mels is {conf['n_mels']}")
        conf["n_mels"] = task.feat_dim
        kind = style.get("type", "vector")
        return cls(num_phones=len(vocab), style_type=kind, style_dim=int(style.get("dim", 768)),
                   speakers=task.speakers if kind == "speaker" else None, **conf)

    # ------------------------------------------------------------------ pieces
    def condition(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """``(B, cond_dim)`` from ``batch["style"] (B, S)`` or ``batch["speakers"]``."""
        if self.style_type == "vector":
            style = batch.get("style")
            if style is None:
                raise DataError("fastspeech_style (style.type vector) needs style vectors in the batch "
                                "(data.tts.style.type: vector and a style.scp per data dir)")
            if style.dim() != 2 or style.shape[1] != self.style_dim:
                raise DataError(f"fastspeech_style expects style vectors of size {self.style_dim}, got shape "
                                f"{tuple(style.shape)}")
            return self.conditioner(style.float())
        idx = []
        for u, s in zip(batch.get("utt_ids", [""] * len(batch["speakers"])), batch["speakers"]):
            if s not in self.speaker_index:
                raise DataError(f"utterance {u!r}: speaker {s!r} is not in the model's speaker table "
                                f"({len(self.speakers)} training speakers)")
            idx.append(self.speaker_index[s])
        return self.conditioner(torch.tensor(idx, device=self.embed.weight.device))

    def conditioning(self, batch: Mapping[str, Any], reference: Optional[torch.Tensor] = None,
                     reference_mask: Optional[torch.Tensor] = None, reference_weight: float = 1.0):
        """``(cond (B, cond_dim), latents)``: the style conditioning, plus, with ``reference_encoder``, the
        projection of the utterance latent ``z``: the reference encoder's on ``reference`` (normalised log-mel
        ``(B, T, n_mels)``, ``reference_mask (B, T)``), or the prior's prediction from the style conditioning
        when no reference is given (text prompts, manipulated vectors); ``reference_weight`` w < 1 moves the
        reference's latent towards the prior's, ``prior + w (z - prior)`` (1 in training and alignment).
        ``latents`` is None without the option, else ``(z, prior)``."""
        cond = self.condition(batch)
        if self.ref_encoder is None:
            return cond, None
        prior = self.ref_prior(cond.detach())
        if reference is None:
            z = prior
        else:
            if reference.dim() != 3 or reference.shape[-1] != self.n_mels:
                raise DataError(f"fastspeech_style: the reference log-mel must be (B, T, {self.n_mels}), got "
                                f"{tuple(reference.shape)}")
            z = self.ref_encoder(reference, reference_mask)
            if reference_weight != 1.0:
                z = prior + float(reference_weight) * (z - prior)
        return cond + self.ref_proj(z), (z, prior)

    def encode(self, phones: torch.Tensor, phone_mask: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = self.embed(phones) * math.sqrt(self.hidden) + self.cond_to_hidden(cond).unsqueeze(1)
        return self.encoder(x, phone_mask, cond)

    @staticmethod
    def _log_likelihood(y: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """Alignment scores in float32 even under bf16 autocast: ``|y|^2 - 2 y.mu + |mu|^2`` of 80-bin frames
        cancels to a few units out of hundreds, below bfloat16's resolution."""
        with torch.autocast(y.device.type, enabled=False):
            return gaussian_log_likelihood(y.float(), mu.float())

    def _norm(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        m, s = self.norm[kind]
        return (x - m) / s

    def _denorm(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        m, s = self.norm[kind]
        return x * s + m

    def variance_targets(self, f0: torch.Tensor, energy: torch.Tensor, durations: torch.Tensor, phone_mask):
        """Normalised per-phone pitch / energy targets ``(B, N)`` from frame F0 (Hz, 0 = unvoiced) and energy:
        mean log-F0 over the phone's voiced frames (0 when it has none), mean log-energy."""
        lf0 = torch.where(f0 > 0, torch.log(f0.clamp(min=1.0)), torch.zeros_like(f0))
        p = average_by_duration(lf0, durations, ignore_zero=True)
        p = torch.where(p > 0, self._norm("pitch", p), torch.zeros_like(p))
        le = torch.log(energy.clamp(min=0) + LOG_ENERGY_FLOOR)
        frame_valid = torch.arange(f0.shape[1], device=f0.device)[None, :] < durations.sum(1, keepdim=True)
        e = average_by_duration(torch.where(frame_valid, le, torch.zeros_like(le)), durations)
        e = torch.where(durations > 0, self._norm("energy", e), torch.zeros_like(e))
        m = phone_mask.to(p.dtype)
        return p * m, e * m

    def _add_variance(self, h: torch.Tensor, pitch: torch.Tensor, energy: torch.Tensor, phone_mask) -> torch.Tensor:
        m = phone_mask.unsqueeze(-1).to(h.dtype)
        pe = self.pitch_embed(pitch.unsqueeze(1)).transpose(1, 2)
        ee = self.energy_embed(energy.unsqueeze(1)).transpose(1, 2)
        return (h + pe + ee) * m

    def frame_variance_targets(self, f0: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        """``(B, T, C)`` in the order of the decoder's frame prosody input: ``pitch`` -> normalised log-F0 of
        the voiced frames (0 elsewhere) and the voicing flag; ``energy`` -> normalised log-energy."""
        cols = []
        if "pitch" in self.frame_variance:
            voiced = f0 > 0
            cols += [torch.where(voiced, self._norm("pitch", torch.log(f0.clamp(min=1.0))), torch.zeros_like(f0)),
                     voiced.to(f0.dtype)]
        if "energy" in self.frame_variance:
            cols.append(self._norm("energy", torch.log(energy.clamp(min=0) + LOG_ENERGY_FLOOR)))
        return torch.stack(cols, dim=-1)

    def _frame_inputs(self, pred: torch.Tensor) -> torch.Tensor:
        """The predictor's ``(B, T, C)`` output as decoder input: log-F0 zeroed where the voicing logit < 0."""
        if "pitch" not in self.frame_variance:
            return pred
        voiced = (pred[..., 1] > 0).to(pred.dtype)
        return torch.cat([(pred[..., 0] * voiced)[..., None], voiced[..., None], pred[..., 2:]], dim=-1)

    def decode(self, h: torch.Tensor, durations: torch.Tensor, cond: torch.Tensor, max_frames: Optional[int] = None,
               mu: Optional[torch.Tensor] = None, frame_targets: Optional[torch.Tensor] = None):
        """Normalised log-mel ``(B, T, n_mels)`` before and after the postnet (the same tensor without
        one), frame lengths, frame mask, a dict of extra outputs. ``decoder_residual``: the decoder predicts the residual over
        the aligned prior means ``mu`` (the alignment's per-phone mel estimate); ``phone_position``
        adds a linear embedding of each frame's relative position in its phone and the phone's
        log-duration to the regulated states. ``frame_variance`` (the model's option): the frame-level
        predictor's output goes into the returned dict ``extra`` and the decoder gets the embedding of the
        given ``frame_targets (B, T, C)``, or of the predictions when None (inference)."""
        attn = alignment_from_durations(durations, max_frames)                    # (B, T, N)
        frames, lens = torch.bmm(attn, h), durations.long().sum(1)
        fmask = sequence_mask(lens, frames.shape[1])
        m = fmask.unsqueeze(-1).to(frames.dtype)
        if self.position is not None:
            frames = frames + self.position(phone_position_features(durations, attn)) * m
        extra = {}
        if self.frame_predictor is not None:
            pred = self.frame_predictor(frames, fmask, cond)                         # (B, T, C)
            extra["frame_pred"] = pred
            fv = (self._frame_inputs(pred) if frame_targets is None else frame_targets).to(frames.dtype) * m
            frames = frames + self.frame_embed(fv.transpose(1, 2)).transpose(1, 2) * m
            extra["frame_inputs"] = fv
        out = self.mel_out(self.decoder(frames, fmask, cond))
        if self.decoder_residual:
            if mu is None:
                raise ValueError("fastspeech_style with decoder_residual needs the prior means mu")
            out = out + torch.bmm(attn, mu)
        out = out * m
        post = out if self.postnet is None else (out + self.postnet(out, fmask)) * m
        return out, post, lens, fmask, extra

    @torch.no_grad()
    def align(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """MAS durations ``(B, N)`` of the batch's phones against its reference log-mel (copy synthesis)."""
        pmask = sequence_mask(batch["phone_lens"], batch["phones"].shape[1])
        y = self._norm("mel", batch["feats"]) * batch["mask"].unsqueeze(-1).to(batch["feats"].dtype)
        cond, _ = self.conditioning(batch, y, batch["mask"])
        h = self.encode(batch["phones"], pmask, cond)
        path = monotonic_alignment(self._log_likelihood(y, self.mu(h)), pmask, batch["mask"])
        return path.sum(-1).long()

    # ------------------------------------------------------------------ training
    def forward(self, batch: Mapping[str, Any], phase: Optional[str] = None,
                cache: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Reconstruction losses (``phase`` None: the one-optimizer model, and validation); with
        ``model.adversarial`` the trainer's two phases: ``discriminator`` (LSGAN loss of the patch
        discriminator on random ``segment_frames`` segments of the reference vs the generated log-mel,
        both normalised; the generator's forward goes into the cache) and ``generator`` (the
        reconstruction losses + ``weight * sum (1 - D(fake))^2`` + ``fm_weight *`` feature matching)."""
        if phase is None:
            return self._reconstruction(batch)[0]
        if self.discriminator is None:
            raise ValueError(f"fastspeech_style: phase {phase!r} needs model.adversarial")
        if phase == "discriminator":
            out, y, post, lens = self._reconstruction(batch)
            size = min(self.segment_frames, int(lens.min()))
            starts = torch.floor(torch.rand(lens.shape[0], device=lens.device) * (lens - size + 1)).long()
            y_seg, fake_seg = random_segments(y, lens, starts, size), random_segments(post, lens, starts, size)
            real, _ = self.discriminator(y_seg)
            fake, _ = self.discriminator(fake_seg.detach())
            d_loss = discriminator_loss([real], [fake])
            metrics = {"d_real": real.float().mean().detach(), "d_fake": fake.float().mean().detach()}
            return {"losses": {"d_loss": d_loss}, "metrics": metrics,
                    "cache": {"out": out, "y": y_seg, "fake": fake_seg}}
        if phase == "generator":
            if not cache or "out" not in cache:
                raise ValueError("fastspeech_style: the generator phase needs the discriminator phase's cache")
            out = cache["out"]
            fake, fake_f = self.discriminator(cache["fake"])
            with torch.no_grad():
                _, real_f = self.discriminator(cache["y"])
            losses = dict(out["losses"])
            losses["adv"] = self.adv_weight * generator_adversarial_loss([fake])
            losses["fm"] = self.fm_weight * feature_matching_loss([real_f], [fake_f])
            return {"losses": losses, "metrics": out["metrics"]}
        raise ValueError(f"fastspeech_style: unknown phase {phase!r}; phases are {self.train_phases}")

    def _reconstruction(self, batch: Mapping[str, Any]):
        """``({"losses", "metrics"}, normalised reference log-mel, generated log-mel after the postnet,
        frame lengths)``."""
        phones, plens = batch["phones"], batch["phone_lens"]
        pmask = sequence_mask(plens, phones.shape[1])
        fmask = batch["mask"]
        y = self._norm("mel", batch["feats"]) * fmask.unsqueeze(-1).to(batch["feats"].dtype)
        cond, latents = self.conditioning(batch, y, fmask)
        h = self.encode(phones, pmask, cond)
        mu = self.mu(h)
        path = monotonic_alignment(self._log_likelihood(y, mu), pmask, fmask)        # (B, N, T)
        durations = path.sum(-1).long()
        mu_y = torch.bmm(path.transpose(1, 2), mu)                                     # (B, T, D)
        prior = _masked_mean(0.5 * ((y - mu_y) ** 2 + math.log(2 * math.pi)), fmask)
        logd_pred = self.duration(h.detach(), pmask, cond)
        logd = torch.log1p(durations.to(h.dtype))
        dur_loss = _masked_mean((logd_pred - logd) ** 2, pmask)
        p_tgt, e_tgt = self.variance_targets(batch["f0"], batch["energy"], durations, pmask)
        p_pred, e_pred = self.pitch(h, pmask, cond), self.energy(h, pmask, cond)
        pitch_loss = _masked_mean((p_pred - p_tgt) ** 2, pmask)
        energy_loss = _masked_mean((e_pred - e_tgt) ** 2, pmask)
        hv = self._add_variance(h, p_tgt, e_tgt, pmask)
        fv_tgt = (self.frame_variance_targets(batch["f0"], batch["energy"]) * fmask.unsqueeze(-1).to(y.dtype)
                  if self.frame_predictor is not None else None)
        mel, post, lens, _, extra = self.decode(hv, durations, cond, max_frames=y.shape[1], mu=mu,
                                                frame_targets=fv_tgt)
        mel_l1 = _masked_mean((mel - y).abs(), fmask)
        w = self.loss_weights
        losses = {"mel": w["mel"] * mel_l1, "prior": w["prior"] * prior, "duration": w["duration"] * dur_loss,
                  "pitch": w["pitch"] * pitch_loss, "energy": w["energy"] * energy_loss}
        post_l1 = mel_l1
        if self.postnet is not None:
            post_l1 = _masked_mean((post - y).abs(), fmask)
            losses["postnet"] = w["postnet"] * post_l1
        if latents is not None:
            z, prior = latents
            losses["ref_prior"] = w["ref_prior"] * ((prior.float() - z.detach().float()) ** 2).mean()
        if w["delta"] > 0:
            losses["delta"] = w["delta"] * _delta_l1(post, y, fmask)
        if self.frame_predictor is not None:
            pred = extra["frame_pred"].float()
            if "pitch" in self.frame_variance:
                voiced = fv_tgt[..., 1] > 0
                losses["frame_pitch"] = w["frame_pitch"] * _masked_mean((pred[..., 0] - fv_tgt[..., 0]) ** 2,
                                                                         fmask & voiced)
                bce = F.binary_cross_entropy_with_logits(pred[..., 1], fv_tgt[..., 1], reduction="none")
                losses["voicing"] = w["voicing"] * _masked_mean(bce, fmask)
            if "energy" in self.frame_variance:
                losses["frame_energy"] = w["frame_energy"] * _masked_mean((pred[..., -1] - fv_tgt[..., -1]) ** 2,
                                                                           fmask)
        with torch.no_grad():
            d_pred = torch.clamp(torch.round(torch.expm1(logd_pred)), min=1)
            metrics = {"mel_l1": post_l1.detach() * self.norm["mel"][1],
                       "dur_mae": _masked_mean((d_pred - durations.to(d_pred.dtype)).abs(), pmask)}
        return {"losses": losses, "metrics": metrics}, y, post, lens

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def infer(self, phones: torch.Tensor, phone_lens: torch.Tensor, style: Optional[torch.Tensor] = None,
              speakers: Optional[List[str]] = None, temperature_duration: float = 0.0,
              temperature_pitch: float = 0.0, length_scale: float = 1.0,
              generator: Optional[torch.Generator] = None, durations: Optional[torch.Tensor] = None,
              max_frames: Optional[int] = None, reference: Optional[torch.Tensor] = None,
              reference_lens: Optional[torch.Tensor] = None,
              reference_weight: Optional[float] = None) -> Dict[str, torch.Tensor]:
        """Log-mel ``(B, T, n_mels)`` (raw front-end scale), ``mel_lens (B,)``, ``durations (B, N)``.

        Sampling noise for candidates: ``log(1 + d)`` and the normalised pitch of every phone get
        ``temperature * (eps_utt + eps_phone) / sqrt(2)`` (standard normal draws from ``generator``:
        one shift per utterance and one per phone). ``durations`` given (copy synthesis) replace
        the predicted ones. Padded phones get duration 0. ``reference`` (raw log-mel ``(B, T, n_mels)``,
        ``reference_lens (B,)``; models with ``reference_encoder``): the recording whose utterance latent the
        speech is conditioned on; None -> the prior's latent from the style. ``reference_weight`` (None: the
        config's ``reference_encoder.weight``): the latent ``prior + w (z_reference - prior)``.
        """
        batch = {"style": style, "speakers": speakers, "utt_ids": [""] * phones.shape[0]}
        pmask = sequence_mask(phone_lens, phones.shape[1])
        ref = ref_mask = None
        if reference is not None and self.ref_encoder is None:
            raise ValueError("fastspeech_style: a reference log-mel was given but the model has no reference_encoder")
        if reference is not None:
            if reference_lens is None:
                reference_lens = torch.full((reference.shape[0],), reference.shape[1], device=reference.device)
            ref_mask = sequence_mask(reference_lens, reference.shape[1])
            ref = self._norm("mel", reference.float()) * ref_mask.unsqueeze(-1).to(torch.float32)
        w = self.reference_weight if reference_weight is None and self.ref_encoder is not None else reference_weight
        cond, _ = self.conditioning(batch, ref, ref_mask, 1.0 if w is None else w)
        h = self.encode(phones, pmask, cond)

        def noise(t):
            b, n = phones.shape
            eu = torch.randn(b, 1, generator=generator).to(h.device)
            ep = torch.randn(b, n, generator=generator).to(h.device)
            return t * (eu + ep) / math.sqrt(2.0)

        if durations is None:
            logd = self.duration(h, pmask, cond)
            if temperature_duration > 0:
                logd = logd + noise(temperature_duration)
            durations = torch.clamp(torch.round(torch.expm1(logd) * length_scale), min=1).long()
        durations = durations.long() * pmask.long()
        p, e = self.pitch(h, pmask, cond), self.energy(h, pmask, cond)
        if temperature_pitch > 0:
            p = p + noise(temperature_pitch) * pmask.to(p.dtype)
        hv = self._add_variance(h, p, e, pmask)
        _, mel, lens, fmask, _ = self.decode(hv, durations, cond, max_frames, mu=self.mu(h))
        mel = self._denorm("mel", mel) * fmask.unsqueeze(-1).to(mel.dtype)
        return {"mel": mel, "mel_lens": lens, "durations": durations, "pitch": p, "energy": e}
