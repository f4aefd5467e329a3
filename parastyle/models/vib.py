"""Two-stage variational information bottleneck (VIB) disentanglement of textual and acoustic content.

Front-end (frozen or trainable) -> a list of L hidden layers ``(B, T, D)`` -> learnable softmax
layer weighting (or one fixed layer) -> VIB encoder -> frame latents ``z (B, T, Z)``:

    e = GELU(W2 GELU(W1 h)),  mu = W_mu e,  var = softplus(W_var e) + 1e-6
    z = mu + sqrt(var) * eps (training),  z = mu (inference)

Stage 1 (``vib_stage1``): a linear frame decoder on z gives character (or sentencepiece) logits;
    loss = CTC(z) + beta * KL(q(z|x) || N(0, I)), the CTC term of each utterance divided by its
    target length and averaged over the batch (``reduction='mean'``, as the authors train it).
Stage 2 (``vib_stage2``): the stage-1 model (front-end, layer weights, encoder) is loaded from its exp
    dir and frozen; it gives z_textual = mu_1. A second encoder with its own layer weights on the
    same hidden layers gives z_acoustic. Two learned-query attention poolings (one per stream) are
    concatenated and classified (emotion, any factor, or speaker id);
    loss = CE + beta * KL(q(z_acoustic|x) || N(0, I)).

The KL term is the closed-form KL per valid frame (summed over the Z dimensions), averaged over
frames; with ``kl_per_dim`` it is further divided by Z. beta follows :func:`beta_at`
(``incremental``: linear from ``start`` to ``end``, reached a configurable number of steps /
fraction of training before the end; or ``constant``), set by the trainer through
``on_step(step, total_steps)``.

Front-ends (``frontend.type``):
* ``context``: trainable context encoder on log-mel / fbank features ``(B, T, F)``: a strided
  linear projection (layer 0) followed by ``num_layers`` residual Conv1d or BiLSTM blocks; every block
  output is one "layer" (so the recipe runs without pretrained weights).
* ``ssl``: frozen torchaudio wav2vec2 / HuBERT / WavLM on waveforms ``(B, S, 1)`` (data frontend ``raw``);
  the layers are the transformer layer outputs. The SSL weights are not stored in checkpoints.
* ``dumped``: pre-computed layer features stored as ``(B, T, L * D)`` (layers concatenated).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from parastyle.data.collate import IGNORE_INDEX
from parastyle.fileio import DataError
from parastyle.losses.vib import gaussian_kl_standard, reparameterize
from parastyle.metrics.asr import cer as char_error_rate
from parastyle.metrics.asr import ctc_greedy_decode
from parastyle.metrics.asr import wer as word_error_rate
from parastyle.models import MODELS
from parastyle.nn.attention_pooling import AttentionPooling
from parastyle.nn.layer_weights import LayerWeighting
from parastyle.nn.pooling import lengths_to_mask


# ---------------------------------------------------------------------------- beta schedule
def beta_at(step: int, total_steps: int, schedule: str = "incremental", start: float = 0.1, end: float = 1.0,
            value: Optional[float] = None, reach_before_end_steps: Optional[int] = None,
            reach_before_end_fraction: Optional[float] = None) -> float:
    """KL weight at optimizer step ``step`` (0-based) of ``total_steps``.

    ``constant``: ``value`` (or ``end`` when ``value`` is None).
    ``incremental``: beta(s) = start + (end - start) * min(s / s_end, 1), where
    s_end = total_steps - reach_before_end_steps, or total_steps * (1 - reach_before_end_fraction)
    (e.g. the final value 5 epochs before the end of 50: fraction 0.1); neither given: s_end = total_steps.
    """
    if schedule == "constant":
        return float(end if value is None else value)
    if schedule != "incremental":
        raise ValueError(f"beta schedule must be incremental or constant, got {schedule!r}")
    if reach_before_end_steps is not None and reach_before_end_fraction is not None:
        raise ValueError("give reach_before_end_steps or reach_before_end_fraction, not both")
    if reach_before_end_steps is not None:
        s_end = total_steps - int(reach_before_end_steps)
    elif reach_before_end_fraction is not None:
        if not 0.0 <= float(reach_before_end_fraction) < 1.0:
            raise ValueError(f"reach_before_end_fraction must be in [0, 1), got {reach_before_end_fraction}")
        s_end = total_steps * (1.0 - float(reach_before_end_fraction))
    else:
        s_end = total_steps
    if s_end <= 0:
        return float(end)
    return float(start + (end - start) * min(step / s_end, 1.0))


def backbone_of_exp(config: Dict[str, Any]) -> str:
    """Short name of the front-end of a VIB exp's config (stage 2: that of its stage-1 exp)."""
    if config["model"]["name"] == "vib_stage2":
        from parastyle.train.config import read_saved_config
        config = read_saved_config(Path(config["model"]["stage1_exp"]) / "config.yaml")
    fe = config["model"].get("frontend") or {"type": "context"}
    if fe.get("type") == "ssl":
        return f"ssl:{fe.get('arch') or Path(str(fe.get('path'))).name}"
    if fe.get("type", "context") == "context":
        return f"context-{fe.get('kind', 'conv')}"
    return str(fe.get("type"))


# ---------------------------------------------------------------------------- front-ends
class ContextLayers(nn.Module):
    """Trainable context encoder exposing its block outputs as layers.

    ``forward(feats (B, T, F), mask (B, T)) -> ([L+1 tensors (B, T', H)], mask (B, T'))`` with
    T' = T // subsample. Layer 0 is a strided linear projection of ``subsample`` stacked frames;
    layers 1..L are residual blocks (``kind`` conv: Conv1d(k) + GELU + LayerNorm; lstm: BiLSTM + LayerNorm).
    """

    def __init__(self, input_dim: int, hidden: int = 192, num_layers: int = 3, kind: str = "conv",
                 kernel_size: int = 5, subsample: int = 2, dropout: float = 0.1):
        super().__init__()
        if kind not in ("conv", "lstm"):
            raise ValueError(f"context encoder kind must be conv or lstm, got {kind!r}")
        if kind == "lstm" and hidden % 2:
            raise ValueError("lstm context encoder needs an even hidden size")
        self.kind, self.subsample, self.output_dim = kind, int(subsample), hidden
        self.num_layers = num_layers + 1
        self.proj = nn.Conv1d(input_dim, hidden, kernel_size=self.subsample, stride=self.subsample)
        if kind == "conv":
            self.blocks = nn.ModuleList(nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2)
                                        for _ in range(num_layers))
        else:
            self.blocks = nn.ModuleList(nn.LSTM(hidden, hidden // 2, batch_first=True, bidirectional=True)
                                        for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        lens = torch.div(mask.sum(1), self.subsample, rounding_mode="floor")
        if int(lens.min()) < 1:
            raise ValueError(f"an utterance is shorter than the subsampling factor {self.subsample}")
        t_out = feats.shape[1] // self.subsample
        out_mask = lengths_to_mask(lens, t_out)
        keep = out_mask.unsqueeze(-1)
        x = self.proj(feats.masked_fill(~mask.unsqueeze(-1), 0.0).transpose(1, 2)).transpose(1, 2)
        x = x.masked_fill(~keep, 0.0)
        layers = [x]
        for block, norm in zip(self.blocks, self.norms):
            if self.kind == "conv":
                y = F.gelu(block(x.transpose(1, 2)).transpose(1, 2))
            else:
                packed = nn.utils.rnn.pack_padded_sequence(x, lens.cpu(), batch_first=True, enforce_sorted=False)
                y, _ = block(packed)
                y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=t_out)
            x = norm(x + self.dropout(y)).masked_fill(~keep, 0.0)
            layers.append(x)
        return layers, out_mask


class SSLLayers(nn.Module):
    """Frozen SSL model layers: ``(wav (B, S, 1), mask (B, S)) -> ([L tensors (B, T, D)], mask (B, T))``.

    Every waveform is normalised over its valid samples (zero mean, unit variance) before the
    model, for every SSL bundle, as the authors' feature extractor does (``normalize_waveform:
    false`` gives the raw waveform). The SSL weights are reloaded from ``path`` and left out of
    ``state_dict``.
    """

    def __init__(self, path: str, arch: Optional[str] = None, num_layers: Optional[int] = None,
                 normalize_waveform: bool = True):
        super().__init__()
        from parastyle.nn.encoders.ssl import SSLLayerExtractor, load_ssl_model
        self.extractor = SSLLayerExtractor(load_ssl_model(path, arch), freeze=True,
                                           normalize_waveform=bool(normalize_waveform))
        self.num_layers = int(num_layers or self.extractor.num_layers)
        self.output_dim = self.extractor.output_dim
        self.subsample = 1
        self._register_state_dict_hook(_drop_ssl_keys)
        self.register_load_state_dict_post_hook(_ignore_missing_ssl_keys)

    def forward(self, wav: torch.Tensor, mask: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        if wav.dim() != 3 or wav.shape[-1] != 1:
            raise ValueError(f"the ssl front-end expects waveforms (B, S, 1) (data frontend type raw), "
                             f"got {tuple(wav.shape)}")
        wav = wav[..., 0] * mask.to(wav.dtype)
        return self.extractor(wav, mask.sum(1), num_layers=self.num_layers)


def _drop_ssl_keys(module, state_dict, prefix, local_metadata):
    for k in [k for k in state_dict if k.startswith(prefix + "extractor.model.")]:
        del state_dict[k]
    return state_dict


def _ignore_missing_ssl_keys(module, incompatible_keys):
    missing = incompatible_keys.missing_keys
    for k in [k for k in missing if ".extractor.model." in "." + k]:
        missing.remove(k)


class DumpedLayers(nn.Module):
    """Pre-computed layers concatenated along the feature axis: ``(B, T, L * D) -> [L tensors (B, T, D)]``."""

    def __init__(self, input_dim: int, num_layers: int):
        super().__init__()
        if input_dim % num_layers:
            raise DataError(f"dumped layer features of dim {input_dim} cannot be split into {num_layers} layers")
        self.num_layers, self.output_dim, self.subsample = num_layers, input_dim // num_layers, 1

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        return list(feats.split(self.output_dim, dim=-1)), mask


def build_vib_frontend(conf: Dict[str, Any], input_dim: int) -> nn.Module:
    conf = dict(conf or {"type": "context"})
    kind = conf.pop("type", "context")
    if kind == "context":
        return ContextLayers(input_dim, **conf)
    if kind == "ssl":
        return SSLLayers(**conf)
    if kind == "dumped":
        return DumpedLayers(input_dim, **conf)
    raise ValueError(f"VIB frontend type must be context, ssl or dumped, got {kind!r}")


# ---------------------------------------------------------------------------- VIB encoder
class VIBEncoder(nn.Module):
    """``h (B, T, D) -> (mu (B, T, Z), var (B, T, Z))``: two Linear+GELU (D -> D), then linear heads."""

    def __init__(self, input_dim: int, latent_dim: int = 128):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(input_dim, input_dim), nn.GELU(),
                                  nn.Linear(input_dim, input_dim), nn.GELU())
        self.mu = nn.Linear(input_dim, latent_dim)
        self.var = nn.Linear(input_dim, latent_dim)
        self.latent_dim = latent_dim

    def forward(self, h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        e = self.body(h)
        return self.mu(e), F.softplus(self.var(e)) + 1e-6


def _freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()


# ---------------------------------------------------------------------------- stage 1
@MODELS.register("vib_stage1")
class VIBStage1(nn.Module):
    """Textual VIB: layers -> weighting -> VIB -> linear CTC decoder. See the module docstring.

    Args:
        frontend: front-end module (see :func:`build_vib_frontend`).
        tokenizer: ``encode(text, utt) -> ids`` / ``decode(ids) -> text`` with ``len()`` tokens, blank 0.
        latent_dim: Z.
        layer: None = learnable layer weighting; int = that layer only (0-based).
        beta: keyword arguments of :func:`beta_at` (``schedule``, ``start``, ``end``, ...).
        frame_shift_s: input frame shift (seconds), for attribution plots.
        kl_per_dim: divide the KL term by Z (KL per latent dimension, per frame) instead of the
            full closed-form KL per frame; a Z times weaker bottleneck at the same beta.
    """

    def __init__(self, frontend: nn.Module, tokenizer, latent_dim: int = 128, layer: Optional[int] = None,
                 beta: Optional[Dict[str, Any]] = None, frame_shift_s: float = 0.01, kl_per_dim: bool = False):
        super().__init__()
        self.kl_per_dim = bool(kl_per_dim)
        self.frontend = frontend
        self.tokenizer = tokenizer
        self.layer_weights = LayerWeighting(frontend.num_layers, fixed_layer=layer)
        self.encoder = VIBEncoder(frontend.output_dim, latent_dim)
        self.decoder = nn.Linear(latent_dim, len(tokenizer))
        self.beta_conf = dict(beta or {})
        self.beta = beta_at(0, 1, **self.beta_conf)
        self.frame_shift_s = frame_shift_s * getattr(frontend, "subsample", 1)

    @classmethod
    def from_config(cls, conf: Dict[str, Any], task) -> "VIBStage1":
        from parastyle.text import tokenizer_from_model_conf
        conf = dict(conf)
        tokenizer = tokenizer_from_model_conf(conf, task, "vib_stage1")
        frontend = build_vib_frontend(conf.pop("frontend", None), task.feat_dim)
        return cls(frontend, tokenizer, frame_shift_s=task.frame_shift_s, **conf)

    def on_step(self, step: int, total_steps: int) -> None:
        self.beta = beta_at(step, total_steps, **self.beta_conf)

    def layers(self, batch: Dict[str, Any]) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Front-end layers ``[L x (B, T, D)]`` and frame mask ``(B, T)``."""
        return self.frontend(batch["feats"], batch["mask"])

    def encode(self, layers: List[torch.Tensor], sample: bool):
        """``-> (h (B,T,D), mu (B,T,Z), var (B,T,Z), z (B,T,Z))``; z sampled when ``sample`` else mu."""
        h = self.layer_weights(layers)
        mu, var = self.encoder(h)
        z = reparameterize(mu, var) if sample else mu
        return h, mu, var, z

    def _targets(self, batch: Dict[str, Any], in_lens: torch.Tensor):
        if "text" not in batch:
            raise DataError("vib_stage1 needs transcripts: the data dir has no 'text' file "
                            "(or some utterance has no line in it)")
        seqs = [self.tokenizer.encode(t, u) for t, u in zip(batch["text"], batch["utt_ids"])]
        for seq, n, utt in zip(seqs, in_lens.tolist(), batch["utt_ids"]):
            need = len(seq) + sum(1 for a, b in zip(seq, seq[1:]) if a == b)
            if need > n:
                raise DataError(f"utterance {utt!r}: {len(seq)} tokens need at least {need} frames for CTC but "
                                f"the encoder gives {n} (utterance too short for its transcript, or reduce "
                                f"frontend subsampling)")
        tgt_lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        flat = torch.tensor([i for s in seqs for i in s], dtype=torch.long)
        return seqs, flat, tgt_lens

    def forward(self, batch: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        layers, mask = self.layers(batch)
        _, mu, var, z = self.encode(layers, sample=self.training)
        logits = self.decoder(z)                                              # (B, T, V)
        log_probs = logits.log_softmax(-1)
        in_lens = mask.sum(1)
        seqs, flat, tgt_lens = self._targets(batch, in_lens)
        # per-utterance CTC divided by its target length, averaged over the batch (torch's
        # reduction='mean', as the authors' training), so beta weighs the KL against a per-token loss
        ctc = F.ctc_loss(log_probs.transpose(0, 1).float(), flat.to(logits.device), in_lens,
                         tgt_lens.to(logits.device), blank=0, reduction="mean", zero_infinity=False)
        kl = gaussian_kl_standard(mu, var, mask) / (mu.shape[-1] if self.kl_per_dim else 1)
        metrics = {"kl_raw": kl.detach(), "beta": self.beta}
        if not self.training:
            hyps = [self.tokenizer.decode(s) for s in ctc_greedy_decode(log_probs.detach(), in_lens)]
            refs = [self.tokenizer.decode(s) for s in seqs]
            metrics["cer"] = char_error_rate(refs, hyps)
            metrics["wer"] = word_error_rate(refs, hyps)
        return {"losses": {"ctc": ctc, "kl": self.beta * kl}, "metrics": metrics}

    @torch.no_grad()
    def embed(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """``{"z_textual": (B, T, Z) (= mu), "original": (B, T, D) layer-weighted input, "mask": (B, T)}``."""
        layers, mask = self.layers(batch)
        h, mu, _, _ = self.encode(layers, sample=False)
        return {"z_textual": mu, "original": h, "mask": mask}

    @torch.no_grad()
    def predict(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """Greedy CTC: ``{"token_ids": list[list[int]], "text": list[str]}``."""
        layers, mask = self.layers(batch)
        _, mu, _, _ = self.encode(layers, sample=False)
        ids = ctc_greedy_decode(self.decoder(mu), mask.sum(1))
        return {"token_ids": ids, "text": [self.tokenizer.decode(s) for s in ids]}


# ---------------------------------------------------------------------------- stage 2
@MODELS.register("vib_stage2")
class VIBStage2(nn.Module):
    """Acoustic VIB on top of a frozen stage-1 model; utterance classifier on both streams.

    Args:
        stage1: a trained :class:`VIBStage1` (frozen here).
        classes: class names of the target (factor labels or speaker ids).
        target: factor name (labels from ``batch["labels"][target]``) or ``"speaker"``
            (labels from ``batch["speakers"]``, closed set).
        latent_dim, layer, beta, kl_per_dim: as in :class:`VIBStage1`, for the acoustic stream.
    """

    def __init__(self, stage1: VIBStage1, classes: List[str], target: str, latent_dim: int = 128,
                 layer: Optional[int] = None, beta: Optional[Dict[str, Any]] = None, dropout: float = 0.0,
                 kl_per_dim: bool = False):
        super().__init__()
        self.kl_per_dim = bool(kl_per_dim)
        self.stage1 = stage1
        _freeze(stage1)
        self.target, self.classes = target, list(classes)
        self.class_index = {c: i for i, c in enumerate(self.classes)}
        fe = stage1.frontend
        self.layer_weights = LayerWeighting(fe.num_layers, fixed_layer=layer)
        self.encoder = VIBEncoder(fe.output_dim, latent_dim)
        self.pool_textual = AttentionPooling(stage1.encoder.latent_dim)
        self.pool_acoustic = AttentionPooling(latent_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(stage1.encoder.latent_dim + latent_dim, len(self.classes))
        self.beta_conf = dict(beta or {})
        self.beta = beta_at(0, 1, **self.beta_conf)
        self.frame_shift_s = stage1.frame_shift_s

    @classmethod
    def from_config(cls, conf: Dict[str, Any], task) -> "VIBStage2":
        from parastyle.train.checkpoint import load_model_from_exp
        conf = dict(conf)
        stage1_exp = conf.pop("stage1_exp", None)
        if stage1_exp is None:
            raise DataError("vib_stage2 needs model.stage1_exp (the exp dir of a trained vib_stage1 model)")
        if not (Path(stage1_exp) / "model.pt").is_file():
            raise DataError(f"{stage1_exp}/model.pt not found: train stage 1 first")
        stage1, _, _ = load_model_from_exp(stage1_exp)
        if not isinstance(stage1, VIBStage1):
            raise DataError(f"{stage1_exp}: model is {type(stage1).__name__}, expected vib_stage1")
        target = conf.pop("target", None)
        if target is None:
            raise DataError("vib_stage2 needs model.target (a factor such as emotion, or speaker)")
        if target == "speaker":
            classes = task.speakers
        elif target in task.factors:
            classes = task.factors[target]
        else:
            raise DataError(f"vib_stage2 target {target!r} is neither 'speaker' nor a factor of the task "
                            f"({sorted(task.factors)}); set data.factors to include it")
        return cls(stage1, classes, target, **conf)

    def train(self, mode: bool = True):
        super().train(mode)
        self.stage1.eval()                 # frozen: no dropout, z_textual = mu
        return self

    def on_step(self, step: int, total_steps: int) -> None:
        self.beta = beta_at(step, total_steps, **self.beta_conf)

    def labels(self, batch: Dict[str, Any]) -> torch.Tensor:
        """``(B,)`` class indices of the target (IGNORE_INDEX where a factor label is unknown)."""
        if self.target != "speaker":
            return batch["labels"][self.target]
        out = []
        for utt, spk in zip(batch["utt_ids"], batch["speakers"]):
            if spk not in self.class_index:
                raise DataError(f"utterance {utt!r}: speaker {spk!r} is not among the {len(self.classes)} training "
                                f"speakers (speaker id is closed-set: split per utterance within speakers)")
            out.append(self.class_index[spk])
        return torch.tensor(out, dtype=torch.long, device=batch["feats"].device)

    def streams(self, batch: Dict[str, Any], sample: bool) -> Dict[str, torch.Tensor]:
        """Frame-level streams: ``z_textual``, ``z_acoustic`` (B,T,Z), ``mu``/``var`` of the acoustic
        posterior, ``original`` (B,T,D) (acoustic layer-weighted input), ``original_textual``, ``mask``."""
        with torch.no_grad():
            layers, mask = self.stage1.layers(batch)
            h1, z_t, _, _ = self.stage1.encode(layers, sample=False)
        h = self.layer_weights(layers)
        mu, var = self.encoder(h)
        z_a = reparameterize(mu, var) if sample else mu
        return {"z_textual": z_t, "z_acoustic": z_a, "mu": mu, "var": var, "original": h,
                "original_textual": h1, "mask": mask}

    def _classify(self, s: Dict[str, torch.Tensor]):
        pt, wt = self.pool_textual(s["z_textual"], s["mask"])
        pa, wa = self.pool_acoustic(s["z_acoustic"], s["mask"])
        logits = self.classifier(self.dropout(torch.cat([pt, pa], dim=-1)))
        return logits, wt, wa

    def forward(self, batch: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        s = self.streams(batch, sample=self.training)
        logits, _, _ = self._classify(s)
        y = self.labels(batch)
        known = y != IGNORE_INDEX
        if bool(known.any()):
            ce = F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX)
            acc = (logits.argmax(-1)[known] == y[known]).float().mean().item()
        else:  # a batch without any known label contributes no classification gradient
            ce, acc = logits.sum() * 0.0, float("nan")
        kl = gaussian_kl_standard(s["mu"], s["var"], s["mask"]) / (s["mu"].shape[-1] if self.kl_per_dim else 1)
        metrics = {"kl_raw": kl.detach(), "beta": self.beta}
        if acc == acc:
            metrics["acc"] = acc
        return {"losses": {"ce": ce, "kl": self.beta * kl}, "metrics": metrics}

    @torch.no_grad()
    def embed(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """Frame latents ``z_textual``, ``z_acoustic`` (B,T,Z), ``original``, ``original_textual`` (B,T,D), ``mask``."""
        s = self.streams(batch, sample=False)
        return {k: s[k] for k in ("z_textual", "z_acoustic", "original", "original_textual", "mask")}

    @torch.no_grad()
    def predict(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """``{target: (B,) predicted class index}``."""
        logits, _, _ = self._classify(self.streams(batch, sample=False))
        return {self.target: logits.argmax(-1)}

    @torch.no_grad()
    def attend(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """Attention weights over frames: ``w_textual``, ``w_acoustic`` (B, T) (0 on padding), ``mask``, ``pred``."""
        s = self.streams(batch, sample=False)
        logits, wt, wa = self._classify(s)
        return {"w_textual": wt, "w_acoustic": wa, "mask": s["mask"], "pred": logits.argmax(-1)}
