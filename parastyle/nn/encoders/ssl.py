"""Self-supervised speech models (wav2vec 2.0, HuBERT, WavLM) loaded from local files.

Three on-disk forms are accepted by :func:`load_ssl_model`; each gives a torchaudio
:class:`~torchaudio.models.Wav2Vec2Model`:

1. a torchaudio bundle state-dict file (e.g. the file behind ``torchaudio.pipelines.WAVLM_LARGE``)
   plus the bundle name as ``arch`` (``"WAVLM_LARGE"``, ``"HUBERT_BASE"``, ``"WAV2VEC2_BASE"``, ...);
   the architecture comes from ``torchaudio.pipelines.<arch>._params``;
2. a file holding ``{"arch_config": {...wav2vec2_model/wavlm_model kwargs...}, "state_dict": {...}}``
   (what :func:`save_ssl_model` writes); ``arch`` is not needed;
3. a Hugging Face checkpoint directory (``config.json`` + weights) of a ``Wav2Vec2Model``,
   ``HubertModel`` or ``WavLMModel`` (or their ``...ForCTC`` heads), read with
   ``local_files_only=True`` and converted by
   ``torchaudio.models.wav2vec2.utils.import_huggingface_model``.

WavLM is recognised by the relative-position-bucket keys (``encoder_num_buckets``) in the
architecture config. Models trained on layer-normalised waveforms (``WAVLM_LARGE``,
``HUBERT_LARGE``, ``WAV2VEC2_LARGE_LV60K``, ...; Hugging Face ``do_normalize``) carry the
attribute ``normalize_waveform = True`` on the returned model; :class:`SSLLayerExtractor`
then normalises each waveform over its valid samples (mean 0, variance 1) before the model.

:class:`SSLLayerExtractor` returns the output of every transformer layer with a frame mask,
and :class:`SSLEncoder` (registered encoder ``"ssl"``) mean-pools one layer over valid frames.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from parastyle.fileio import DataError, atomic_write
from parastyle.nn.encoders import ENCODERS
from parastyle.nn.pooling import lengths_to_mask, masked_mean

PathLike = Union[str, os.PathLike]

_HF_CLASSES = {
    "Wav2Vec2Model": "Wav2Vec2Model",
    "Wav2Vec2ForCTC": "Wav2Vec2ForCTC",
    "Wav2Vec2ForPreTraining": "Wav2Vec2Model",
    "HubertModel": "HubertModel",
    "HubertForCTC": "HubertModel",
    "WavLMModel": "WavLMModel",
    "WavLMForCTC": "WavLMForCTC",
}


def _is_wavlm_config(arch_config: Dict[str, Any]) -> bool:
    return "encoder_num_buckets" in arch_config or "encoder_max_distance" in arch_config


def build_ssl_model(arch_config: Dict[str, Any]) -> nn.Module:
    """Randomly initialised torchaudio model from ``wav2vec2_model``/``wavlm_model`` kwargs."""
    from torchaudio.models import wav2vec2_model, wavlm_model

    conf = dict(arch_config)
    if "extractor_conv_layer_config" in conf and conf["extractor_conv_layer_config"] is not None:
        conf["extractor_conv_layer_config"] = [tuple(c) for c in conf["extractor_conv_layer_config"]]
    conf.setdefault("aux_num_out", None)
    builder = wavlm_model if _is_wavlm_config(conf) else wav2vec2_model
    try:
        return builder(**conf)
    except TypeError as e:
        raise DataError(f"invalid SSL architecture config {sorted(conf)}: {e}") from None


def save_ssl_model(model: nn.Module, arch_config: Dict[str, Any], path: PathLike,
                   normalize_waveform: bool = False) -> None:
    """Write ``{"arch_config", "state_dict", "normalize_waveform"}`` atomically (form 2 above)."""
    blob = {"arch_config": dict(arch_config), "state_dict": model.state_dict(),
            "normalize_waveform": bool(normalize_waveform)}
    with atomic_write(path, "wb") as f:
        torch.save(blob, f)


def _bundle(arch: str):
    import torchaudio.pipelines as pipelines

    bundle = getattr(pipelines, arch, None)
    if bundle is None or not hasattr(bundle, "_params"):
        names = sorted(n for n in dir(pipelines)
                       if hasattr(getattr(pipelines, n), "_params") and hasattr(getattr(pipelines, n), "_model_type"))
        raise DataError(f"unknown torchaudio SSL bundle {arch!r}; expected one of {names}")
    return bundle


def _load_hf_dir(path: Path) -> nn.Module:
    import transformers
    from torchaudio.models.wav2vec2.utils import import_huggingface_model

    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise DataError(f"{path}: not a Hugging Face checkpoint directory (no config.json)")
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    archs = cfg.get("architectures") or []
    model_type = cfg.get("model_type", "")
    cls_name = None
    for a in archs:
        if a in _HF_CLASSES:
            cls_name = _HF_CLASSES[a]
            break
    if cls_name is None:
        cls_name = {"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel", "wavlm": "WavLMModel"}.get(model_type)
    if cls_name is None:
        raise DataError(f"{cfg_file}: unsupported model (architectures={archs}, model_type={model_type!r}); "
                        f"expected a wav2vec2, hubert or wavlm checkpoint")
    hf_model = getattr(transformers, cls_name).from_pretrained(str(path), local_files_only=True)
    hf_model.eval()
    model = import_huggingface_model(hf_model)
    normalize = False
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        normalize = bool(json.loads(pre.read_text(encoding="utf-8")).get("do_normalize", False))
    model.normalize_waveform = normalize
    return model


def load_ssl_model(path: PathLike, arch: Optional[str] = None) -> nn.Module:
    """Load a pretrained SSL model from a local path (never downloads).

    Args:
        path: a torchaudio bundle state-dict file (with ``arch`` = bundle name), a file written by
            :func:`save_ssl_model`, or a Hugging Face checkpoint directory.
        arch: torchaudio bundle name (``"WAVLM_LARGE"``, ``"HUBERT_BASE"``, ``"WAV2VEC2_BASE"``, ...),
            required for a bare state-dict file, ignored otherwise (an error if it contradicts nothing
            is not checked for form 2: the file's own config wins).

    Returns:
        ``torchaudio.models.Wav2Vec2Model`` in eval mode, with attribute ``normalize_waveform``.
    """
    path = Path(path)
    if path.is_dir():
        return _load_hf_dir(path)
    if not path.is_file():
        raise DataError(f"{path}: SSL model not found (expected a torchaudio state-dict file "
                        f"or a Hugging Face checkpoint directory)")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict):
        raise DataError(f"{path}: expected a state dict or {{'arch_config', 'state_dict'}}, got {type(blob).__name__}")
    if "arch_config" in blob and "state_dict" in blob:
        arch_config, state_dict = blob["arch_config"], blob["state_dict"]
        normalize = bool(blob.get("normalize_waveform", False))
    else:
        if arch is None:
            raise DataError(f"{path}: a bare state-dict file needs the torchaudio bundle name "
                            f"(arch, e.g. 'WAVLM_LARGE')")
        bundle = _bundle(arch)
        arch_config, state_dict = bundle._params, blob
        normalize = bool(getattr(bundle, "_normalize_waveform", False))
    model = build_ssl_model(arch_config)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        raise DataError(f"{path}: weights do not match the architecture"
                        f"{' ' + arch if arch else ''}: {e}") from None
    model.normalize_waveform = normalize
    model.eval()
    return model


def normalize_waveforms(wav: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-utterance layer norm over valid samples: ``(B, S)`` -> ``(B, S)``, padding stays 0.

    ``y = (x - mean_valid(x)) / sqrt(var_valid(x) + eps)``.
    """
    m = mask.to(wav.dtype)
    n = m.sum(1, keepdim=True).clamp(min=1)
    mean = (wav * m).sum(1, keepdim=True) / n
    var = (((wav - mean) * m) ** 2).sum(1, keepdim=True) / n
    return (wav - mean) / torch.sqrt(var + eps) * m


class SSLLayerExtractor(nn.Module):
    """Every transformer layer of a torchaudio SSL model, with the frame mask.

    ``forward(wav (B, S), wav_lens (B,)) -> (layers, mask)`` where ``layers`` is a list of
    ``num_layers`` tensors ``(B, T, D)`` (entry ``i`` = output of transformer layer ``i + 1``,
    as ``Wav2Vec2Model.extract_features`` returns them) and ``mask`` is ``(B, T)`` bool, True on
    frames computed from valid samples. ``num_layers`` limits the computation to the first layers.
    For pre-LayerNorm models (``encoder_layer_norm_first=True``: WavLM, HuBERT-Large/X-Large,
    wav2vec2-Large-LV60K) the last layer includes the encoder's final LayerNorm, as the model's
    ``forward`` and Hugging Face ``last_hidden_state`` do (the raw last block is not normalised);
    post-LN models (base wav2vec 2.0 / HuBERT) normalise inside every layer and have no final one.

    With ``freeze=True`` the model is in eval mode, its parameters do not require gradients and
    the forward runs under ``torch.no_grad``; ``train()`` on a parent module keeps it in eval mode.
    Fine-tuning (``freeze=False``) runs every layer (no LayerDrop). Padding never changes the
    valid frames of ``layer_norm``-extractor models (WavLM, large wav2vec 2.0 / HuBERT); the
    ``group_norm`` extractor of base models normalises over the padded length, so batch those
    by similar length. A waveform too short for one frame raises ValueError.
    """

    def __init__(self, model: nn.Module, freeze: bool = True, normalize_waveform: Optional[bool] = None):
        super().__init__()
        self.model = model
        self.freeze = freeze
        self.normalize_waveform = (bool(getattr(model, "normalize_waveform", False))
                                   if normalize_waveform is None else normalize_waveform)
        self.num_layers = len(model.encoder.transformer.layers)
        self.output_dim = model.encoder.transformer.layer_norm.normalized_shape[0]
        # torchaudio's Transformer.layer_norm_first is the inverse of the model's
        # encoder_layer_norm_first: False = pre-LN layers, the encoder LayerNorm comes after the last one
        self.final_layer_norm = not bool(model.encoder.transformer.layer_norm_first)
        if freeze:
            for p in self.model.parameters():
                p.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def frame_lengths(self, wav_lens: torch.Tensor) -> torch.Tensor:
        """Number of output frames for ``(B,)`` sample counts (the conv stack's length formula)."""
        lens = wav_lens
        for layer in self.model.feature_extractor.conv_layers:
            conv = layer.conv
            lens = torch.div(lens - conv.kernel_size[0], conv.stride[0], rounding_mode="floor") + 1
            lens = lens.clamp(min=0)
        return lens

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor,
                num_layers: Optional[int] = None) -> Tuple[List[torch.Tensor], torch.Tensor]:
        if wav.dim() != 2:
            raise ValueError(f"expected waveforms (B, S), got shape {tuple(wav.shape)}")
        wav_lens = wav_lens.to(wav.device).long()
        if self.normalize_waveform:
            wav = normalize_waveforms(wav, lengths_to_mask(wav_lens, wav.shape[1]))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            return self._layers(wav, wav_lens, num_layers)

    def _layers(self, wav: torch.Tensor, wav_lens: torch.Tensor,
                num_layers: Optional[int]) -> Tuple[List[torch.Tensor], torch.Tensor]:
        # Same computation as Wav2Vec2Model.extract_features, written out because torchaudio's
        # WavLM attention accepts padding only as a key-padding mask (not as an attention mask).
        n = self.num_layers if num_layers is None else num_layers
        if not 1 <= n <= self.num_layers:
            raise ValueError(f"num_layers must be in 1..{self.num_layers}, got {num_layers}")
        feats, lens = self.model.feature_extractor(wav, wav_lens)
        short = (lens <= 0).nonzero().flatten().tolist()
        if short:
            i = short[0]
            raise ValueError(f"waveform {i} of the batch has {int(wav_lens[i])} samples: too short for one "
                             f"frame of the SSL model (see frame_lengths)")
        valid = lengths_to_mask(lens, feats.shape[1])                      # (B, T)
        enc = self.model.encoder
        x = enc.feature_projection(feats).masked_fill(~valid.unsqueeze(-1), 0.0)
        transformer = enc.transformer
        x = transformer._preprocess(x)
        pad = ~valid
        is_wavlm = hasattr(transformer.layers[0].attention, "rel_attn_embed")
        attn_mask = None
        if is_wavlm:
            key_pad = torch.zeros(pad.shape, dtype=x.dtype, device=x.device).masked_fill(pad, float("-inf"))
        else:
            b, t = pad.shape
            attn_mask = (-10000.0 * pad[:, None, None, :].to(x.dtype)).expand(b, 1, t, t)
        out: List[torch.Tensor] = []
        position_bias = None
        for layer in transformer.layers[:n]:
            if is_wavlm:
                x, position_bias = layer(x, None, position_bias=position_bias, key_padding_mask=key_pad)
            else:
                x, position_bias = layer(x, attn_mask, position_bias=position_bias)
            out.append(x)
        if n == self.num_layers and self.final_layer_norm:
            out[-1] = transformer.layer_norm(out[-1])     # pre-LN models: as forward / last_hidden_state
        return out, valid


@ENCODERS.register("ssl")
class SSLEncoder(nn.Module):
    """Utterance embedding = mean over valid frames of one SSL layer (registered ``"ssl"``).

    Input ``x`` is the waveform ``(B, S, 1)`` (frontend type ``raw``) with sample mask ``(B, S)``;
    output ``(B, D)`` where D is the model's hidden size. ``input_dim`` is ignored.

    Args:
        path, arch: see :func:`load_ssl_model`.
        layer: transformer layer to pool, 1-based (``-1`` = last; WavLM-Large has 24).
        trainable: fine-tune the SSL model (else frozen, eval mode, no gradients).
        normalize_waveform: override the model's own waveform normalisation flag.
        save_frozen_weights: when frozen, whether the SSL weights go into this module's
            ``state_dict`` (default False: they are reloaded from ``path``; checkpoints stay small).
    """

    def __init__(self, input_dim: int = 1, path: Optional[str] = None, arch: Optional[str] = None,
                 layer: int = -1, trainable: bool = False, normalize_waveform: Optional[bool] = None,
                 save_frozen_weights: bool = False):
        super().__init__()
        if path is None:
            raise DataError("encoder 'ssl' needs 'path' (a torchaudio state-dict file with 'arch', "
                            "or a Hugging Face checkpoint directory)")
        self.extractor = SSLLayerExtractor(load_ssl_model(path, arch), freeze=not trainable,
                                           normalize_waveform=normalize_waveform)
        n = self.extractor.num_layers
        if layer == -1:
            layer = n
        if not 1 <= layer <= n:
            raise ValueError(f"layer must be in 1..{n} or -1, got {layer}")
        self.layer = layer
        self.trainable = trainable
        self.output_dim = self.extractor.output_dim
        if not trainable and not save_frozen_weights:
            self._register_state_dict_hook(_drop_frozen_keys)
            self.register_load_state_dict_post_hook(_ignore_missing_frozen_keys)

    def forward_frames(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x (B, S, 1)``, ``mask (B, S)`` -> frames of the chosen layer ``(B, T, D)``, mask ``(B, T)``."""
        if x.dim() == 3:
            if x.shape[-1] != 1:
                raise ValueError(f"encoder 'ssl' expects waveforms (B, S, 1), got shape {tuple(x.shape)} "
                                 f"(set the frontend type to 'raw')")
            x = x[..., 0]
        lens = mask.sum(1)
        layers, fmask = self.extractor(x * mask.to(x.dtype), lens, num_layers=self.layer)
        return layers[self.layer - 1], fmask

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, S, 1)``, ``(B, S)`` -> ``(B, D)``: masked mean of the chosen layer."""
        h, fmask = self.forward_frames(x, mask)
        return masked_mean(h, fmask)


_FROZEN_PREFIX = "extractor.model."


def _drop_frozen_keys(module, state_dict, prefix, local_metadata):
    """State-dict hook: leave the frozen SSL weights out (they are reloaded from ``path``)."""
    for k in [k for k in state_dict if k.startswith(prefix + _FROZEN_PREFIX)]:
        del state_dict[k]
    return state_dict


def _ignore_missing_frozen_keys(module, incompatible_keys):
    """Load post-hook: the frozen SSL weights are expected to be absent from a checkpoint."""
    own = {_FROZEN_PREFIX + k for k in module.extractor.model.state_dict()}
    missing = incompatible_keys.missing_keys
    for k in [k for k in missing if any(k == o or k.endswith("." + o) for o in own)]:
        missing.remove(k)
