"""ParaSpeechCLAP (arXiv 2603.28737): a dual encoder mapping speech and style captions to one space.

Speech tower: any registered encoder (``"ssl"`` for WavLM-Large mean-pooled over valid frames, or
a feature encoder such as ``"cnn"``, ``"lstm"``, ``"transformer"``, ``"qformer"``, ``"tdnn"``) followed
by a :class:`~parastyle.nn.projection.ProjectionHead`. Text tower:
:class:`~parastyle.nn.text_encoder.TextEncoder` (frozen or trainable) followed by its own head.
Both embeddings are L2-normalised in the joint ``embed_dim``-d space (768 in the paper).

Losses (each multiplied by its weight from ``loss_weights``):

* ``infonce`` — symmetric InfoNCE over cosine similarities with the learnable logit scale
  (initialised at 1/0.07, capped at 100) over the batch gathered from every DDP rank
  (:func:`parastyle.losses.infonce.global_infonce_loss`). With ``caption_positives`` clips of one
  batch that share a caption are positives of each other rather than negatives.
* ``tag_bce`` — intrinsic-tag classification through the text tower: each step draws one
  paraphrase per tag (``tag_paraphrases`` JSON; a ``torch.Generator`` seeded by ``(seed, step)``,
  so a resumed run draws what the uninterrupted one drew), encodes them with the text tower into
  ``(M, E)`` tag embeddings and applies :func:`parastyle.losses.tagging.tag_bce_loss` against the
  multi-hot tags of the batch, with logits the plain cosine ``cos(speech, tag)`` (no logit scale,
  no bias, as in the paper and the authors' code: the tag loss never moves the temperature).

Captions: when a clip has several captions (ParaSpeechCaps' ``text_description`` list) the
``clap`` dataset (:mod:`parastyle.data.caption_dataset`) draws one per draw of the clip.

Config (``model:`` section of the training YAML)::

    name: clap
    encoder: {name: ssl, path: ..., arch: WAVLM_LARGE, trainable: true}   # speech tower
    text_encoder: {path: null, pooling: auto, trainable: false, max_length: 64}
    embed_dim: 768
    projection: {dropout: 0.5}
    temperature: 0.07
    max_logit_scale: 100.0
    caption_positives: true
    loss_weights: {infonce: 1.0, tag_bce: 0.0}
    tag_paraphrases: conf/tag_paraphrases.json     # needed when tag_bce > 0
    tag_ignore_unknown: false
    seed: 0
"""
from __future__ import annotations

import weakref
import zlib
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from parastyle.fileio import DataError
from parastyle.losses.infonce import LogitScale, global_infonce_loss
from parastyle.losses.tagging import TagParaphrases, tag_bce_loss
from parastyle.models import MODELS
from parastyle.nn.encoders import build_encoder
from parastyle.nn.projection import ProjectionHead


def caption_ids(captions: Sequence[str]) -> torch.Tensor:
    """Stable integer id per caption text (CRC-32), ``(B,)`` long; equal captions, equal ids."""
    return torch.tensor([zlib.crc32(c.encode("utf-8")) for c in captions], dtype=torch.long)


@MODELS.register("clap")
class CLAP(nn.Module):
    """Speech/caption dual encoder.

    Args:
        speech_encoder: module ``(x (B, T, D), mask (B, T)) -> (B, H_s)`` with ``.output_dim``.
        text_encoder: module ``list[str] -> (B, H_t)`` with ``.output_dim``.
        embed_dim: joint space size.
        projection: kwargs of both :class:`ProjectionHead` (``dropout``).
        temperature, max_logit_scale: InfoNCE logit scale ``1/tau`` init and cap.
        caption_positives: clips sharing a caption are InfoNCE positives of each other.
        loss_weights: ``{"infonce": w, "tag_bce": w}``.
        tag_paraphrases: :class:`TagParaphrases` (required when ``tag_bce`` weight > 0).
        tag_ignore_unknown: leave out batch tags absent from the paraphrase file (else an error).
        seed: seed of the paraphrase draws (one generator per step, seeded by ``(seed, step)``).
    """

    def __init__(self, speech_encoder: nn.Module, text_encoder: nn.Module, embed_dim: int = 768,
                 projection: Optional[Dict[str, Any]] = None, temperature: float = 0.07,
                 max_logit_scale: float = 100.0, caption_positives: bool = True,
                 loss_weights: Optional[Dict[str, float]] = None,
                 tag_paraphrases: Optional[TagParaphrases] = None, tag_ignore_unknown: bool = False,
                 seed: int = 0):
        super().__init__()
        weights = {"infonce": 1.0, "tag_bce": 0.0}
        unknown = set(loss_weights or {}) - set(weights)
        if unknown:
            raise ValueError(f"clap: unknown loss_weights {sorted(unknown)}; expected infonce, tag_bce")
        weights.update({k: float(v) for k, v in (loss_weights or {}).items()})
        if weights["tag_bce"] > 0 and tag_paraphrases is None:
            raise ValueError("clap: loss_weights.tag_bce > 0 needs tag_paraphrases (a JSON tag -> paraphrases)")
        self.loss_weights = weights
        self.speech_encoder = speech_encoder
        self.text_encoder = text_encoder
        proj = dict(projection or {})
        self.speech_proj = ProjectionHead(speech_encoder.output_dim, embed_dim, **proj)
        self.text_proj = ProjectionHead(text_encoder.output_dim, embed_dim, **proj)
        self.logit_scale = LogitScale(temperature, max_logit_scale)
        self.caption_positives = caption_positives
        self.tag_paraphrases = tag_paraphrases
        self.tag_ignore_unknown = tag_ignore_unknown
        self.seed = int(seed)
        self.step = 0
        self.embed_dim = embed_dim

    @classmethod
    def from_config(cls, conf: Dict[str, Any], task) -> "CLAP":
        conf = dict(conf)
        enc_conf = conf.pop("encoder", None) or conf.pop("speech_encoder", None)
        if enc_conf is None:
            raise ValueError("clap: model.encoder (the speech tower, e.g. {name: ssl, path: ...}) is required")
        speech = build_encoder(enc_conf, task.feat_dim)
        from parastyle.nn.text_encoder import TextEncoder
        text = TextEncoder(**dict(conf.pop("text_encoder", None) or {}))
        para = conf.pop("tag_paraphrases", None)
        if para is not None and not isinstance(para, TagParaphrases):
            para = TagParaphrases(para) if isinstance(para, dict) else TagParaphrases.from_json(para)
        return cls(speech, text, tag_paraphrases=para, **conf)

    # ------------------------------------------------------------------ embeddings
    def speech_embedding(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``feats (B, T, D)``, ``mask (B, T)`` -> ``(B, E)`` L2-normalised speech embeddings."""
        return F.normalize(self.speech_proj(self.speech_encoder(feats, mask)), dim=-1)

    def text_embedding(self, texts: Sequence[str]) -> torch.Tensor:
        """``texts`` (C strings) -> ``(C, E)`` L2-normalised caption embeddings."""
        h = self.text_encoder(list(texts))
        h = h.to(self.text_proj.fc1.weight.device)
        return F.normalize(self.text_proj(h), dim=-1)

    @torch.no_grad()
    def embed(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """``{"speech": (B, E)}`` L2-normalised speech embeddings."""
        return {"speech": self.speech_embedding(batch["feats"], batch["mask"])}

    @torch.no_grad()
    def embed_text(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """``(C, E)`` L2-normalised embeddings of ``texts``, encoded ``batch_size`` at a time."""
        texts = list(texts)
        if not texts:
            raise ValueError("embed_text: no text")
        return torch.cat([self.text_embedding(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)])

    # ------------------------------------------------------------------ training
    def on_step(self, step: int, total_steps: int) -> None:
        """Trainer hook: the optimizer step about to run (seeds that step's paraphrase draw)."""
        self.step = int(step)

    def paraphrase_generator(self) -> torch.Generator:
        """A generator seeded by ``(seed, step)``: the draw depends on the step only (exact resume)."""
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.step)
        return g

    def forward(self, batch: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        """Losses ``infonce`` and (when weighted) ``tag_bce``; metrics ``logit_scale``, ``a2t_acc``."""
        captions = batch.get("captions")
        if captions is None:
            raise DataError(f"clap: the batch has no captions (every utterance needs a line in utt2caption); "
                            f"first utterances: {batch.get('utt_ids', [])[:3]}")
        speech = self.speech_embedding(batch["feats"], batch["mask"])
        text = self.text_embedding(captions)
        scale = self.logit_scale()
        ids = caption_ids(captions).to(speech.device) if self.caption_positives else None
        losses = {"infonce": self.loss_weights["infonce"] * global_infonce_loss(speech, text, scale, ids)}
        with torch.no_grad():
            local = speech @ text.t()
            if ids is not None:
                hit = ids[local.argmax(1)] == ids
            else:
                hit = local.argmax(1) == torch.arange(len(captions), device=speech.device)
        metrics: Dict[str, Any] = {"logit_scale": scale.detach(), "a2t_acc": hit.float().mean()}
        if self.loss_weights["tag_bce"] > 0:
            tags = batch.get("tags")
            if tags is None:
                raise DataError(f"clap: loss tag_bce needs tags (utt2tags) for every utterance; "
                                f"first utterances: {batch.get('utt_ids', [])[:3]}")
            prompts = self.tag_paraphrases.sample(self.paraphrase_generator())
            tag_emb = self.text_embedding(prompts)
            y = self.tag_paraphrases.multi_hot(tags, batch.get("utt_ids"), self.tag_ignore_unknown).to(speech.device)
            losses["tag_bce"] = self.loss_weights["tag_bce"] * tag_bce_loss(speech, tag_emb, y)
        return {"losses": losses, "metrics": metrics}


# ---------------------------------------------------------------------- joint-space helpers
# model -> None (embed_text returns a tensor) or the sorted subspace names of its embed_text
_TEXT_KEYS: "weakref.WeakKeyDictionary[nn.Module, Optional[List[str]]]" = weakref.WeakKeyDictionary()


def _joint(parts: Dict[str, torch.Tensor], keys: Sequence[str]) -> torch.Tensor:
    return torch.cat([F.normalize(parts[k].float(), dim=-1) for k in keys], dim=-1)


def joint_embeddings(model: nn.Module, batch: Optional[Dict[str, Any]] = None,
                     texts: Optional[Sequence[str]] = None) -> Dict[str, torch.Tensor]:
    """Speech and/or text embeddings of any model with ``embed`` / ``embed_text`` in one space.

    * ``embed_text`` returns a tensor (CLAP): the speech side is the only entry of ``embed(batch)``;
      both are L2-normalised.
    * ``embed_text`` returns ``{subspace: (B, D_s)}`` (ParaMETA): each subspace present on both
      sides (sorted by name) is L2-normalised and the results are concatenated, so the cosine of
      two joint vectors is the mean of the subspace cosines (the norm of a joint vector is
      ``sqrt(K)`` for ``K`` subspaces; :func:`joint_cosine` normalises it away).

    Returns ``{"speech": (B, E)}`` and/or ``{"text": (C, E)}``.
    """
    out: Dict[str, torch.Tensor] = {}
    with torch.no_grad():
        speech = model.embed(batch) if batch is not None else None
        if texts is not None:
            probe = model.embed_text(list(texts))
        else:
            if model not in _TEXT_KEYS:
                t = model.embed_text(["a person is speaking"])
                _TEXT_KEYS[model] = None if torch.is_tensor(t) else sorted(t)
            keys = _TEXT_KEYS[model]
            probe = torch.empty(0) if keys is None else dict.fromkeys(keys)
    if torch.is_tensor(probe):
        if texts is not None:
            out["text"] = F.normalize(probe.float(), dim=-1)
        if speech is not None:
            if len(speech) != 1:
                raise ValueError(f"model.embed returns {sorted(speech)}; expected one speech embedding "
                                 f"for a model whose embed_text returns a tensor")
            out["speech"] = F.normalize(next(iter(speech.values())).float(), dim=-1)
        return out
    keys = sorted(probe)
    if speech is not None:
        keys = [k for k in keys if k in speech]
        if not keys:
            raise ValueError(f"no subspace in common between embed {sorted(speech)} and embed_text {sorted(probe)}")
        out["speech"] = _joint(speech, keys)
    if texts is not None:
        out["text"] = _joint(probe, keys)
    return out


def joint_cosine(speech: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``(N, E)``, ``(C, E)`` -> ``(N, C)`` cosine similarities of joint embeddings."""
    return F.normalize(speech, dim=-1) @ F.normalize(text, dim=-1).t()
