"""ParaMETA (arXiv 2601.12289) and its CLAP-objective baseline.

ParaMETA ("parameta")::

    feats (B, T, 80) --encoder--> META m (B, 768)    (the paper's backbones end in 768-d: no projection;
                                                     another encoder size gets a Linear(E, 768))
    m --Linear_f--> subspace s_f (B, 192)        one independent projection per factor f
    caption --frozen sentence encoder--> t (B, 384) --Linear_f--> text subspace u_f (B, 192)

(The four 192-d speech projections together are one Linear(768, 768) cut into slices, as are the
text projections; the paper's parameter totals count the speech side plus a text Linear(768, 768).)

Losses (the trainer sums them; names as returned by ``forward``)::

    supcon_<f>  = SupCon(s_f, y_f; tau_supcon = 0.07)                           (each factor)
    meta        = META regularisation(m, {y_f}; tau_meta = 0.1)                 (use_meta only)
    pal_speech  = lambda * sum_f mean_i (1 - cos(s_f,i, p_f,y_i))               (prototype alignment)
    pal_text    = lambda * sum_f mean_i (1 - cos(u_f,i, p_f,y_i))               (use_text only)

Prototypes ``p_f,c`` are EMA buffers (momentum 0.99) of L2-normalised batch class means of the speech
subspace embeddings, updated inside ``forward`` in train mode *before* the alignment term is computed
(so a class met for the first time is aligned to its own batch mean). Text embeddings never update
prototypes. Inference: each subspace embedding is LayerNorm-ed (no affine parameters) and given the
class of the most cosine-similar prototype, per factor (``inference_layernorm``, as the authors' release).

CLAP objective ("clap_objective"): speech encoder -> shared space, caption -> the same space, loss
symmetric InfoNCE (utterances with identical captions count as positives of each other).
Classification: the class whose caption, built from a per-factor template (default
``"a {label} voice"``, ``"a voice speaking {label}"`` for language; a label is replaced by its
entry in ``label_names`` when given, else underscores become spaces), is most cosine-similar to the
speech embedding.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from parastyle.losses.contrastive import IGNORE_INDEX, meta_regularization_loss, supcon_loss, symmetric_info_nce
from parastyle.losses.prototypes import PrototypeBank
from parastyle.models import MODELS
from parastyle.nn.encoders import build_encoder


def _check_batch(batch: Mapping[str, Any], factors: Sequence[str], need_labels: bool) -> None:
    for key in ("feats", "mask"):
        if key not in batch:
            raise KeyError(f"batch has no {key!r} (keys: {sorted(batch)})")
    if need_labels:
        missing = [f for f in factors if f not in batch.get("labels", {})]
        if missing:
            raise KeyError(f"batch has no labels for factor(s) {missing}; the model was built for {list(factors)}")


def _build_text_encoder(conf: Optional[Mapping[str, Any]]):
    from parastyle.nn.text_encoder import TextEncoder

    conf = dict(conf or {})
    return TextEncoder(path=conf.get("path"), pooling=conf.get("pooling", "auto"),
                       trainable=bool(conf.get("trainable", False)), max_length=int(conf.get("max_length", 64)))


def _captions(batch: Mapping[str, Any], who: str) -> List[str]:
    caps = batch.get("captions")
    if caps is None:
        utts = batch.get("utt_ids", [])[:3]
        raise KeyError(f"{who}: the batch has no captions (utterances {utts}...): the data dir needs an "
                       f"utt2caption entry for every utterance, or set use_text: false")
    return list(caps)


def _accuracy(pred: torch.Tensor, labels: torch.Tensor) -> Optional[float]:
    known = labels != IGNORE_INDEX
    if not bool(known.any()):
        return None
    return float((pred[known] == labels[known]).float().mean())


@MODELS.register("parameta")
class ParaMETA(nn.Module):
    """ParaMETA model.

    Args:
        feat_dim: D of the input features.
        factors: ``{factor: [labels]}`` (from ``task.factors``); index = position.
        encoder: encoder config ``{"name": "cnn"|"lstm"|"qformer"|"transformer", ...}``.
        meta_dim: size of the META embedding (768). An encoder whose ``output_dim`` is ``meta_dim``
            *is* the META encoder (no projection); otherwise a ``Linear(output_dim, meta_dim)`` follows it.
        subspace_dim: size of each factor subspace (192).
        tau_supcon: temperature of the per-subspace supervised contrastive loss (paper: 0.07).
        tau_meta: temperature of the META regularisation (paper: 0.1).
        tau: one temperature for both losses (older configs); give either ``tau`` or the two above.
        inference_layernorm: LayerNorm (no affine) each subspace embedding before the cosine to the
            prototypes at inference (``classify``, ``predict``, ``predict_text`` and the batch accuracy).
        lam: weight lambda of the prototype alignment terms (0.1).
        momentum: EMA momentum of the prototypes (0.99).
        use_meta: add the META regularisation (ParaMETA) or not (ParaMETA w/o META).
        use_text: add text alignment (needs captions in every training batch); false = no text encoder
            and no text projection (``embed_text`` / ``predict_text`` then raise).
        text_encoder: ``{"path": dir or null (bundled all-MiniLM-L6-v2), "pooling": "auto",
            "trainable": false, "max_length": 64}`` (see ``parastyle.nn.text_encoder.TextEncoder``).
    """

    def __init__(self, feat_dim: int, factors: Mapping[str, Sequence[str]], encoder: Mapping[str, Any],
                 meta_dim: int = 768, subspace_dim: int = 192, tau_supcon: Optional[float] = None,
                 tau_meta: Optional[float] = None, tau: Optional[float] = None, lam: float = 0.1,
                 momentum: float = 0.99, use_meta: bool = True, use_text: bool = True,
                 text_encoder: Optional[Mapping[str, Any]] = None, inference_layernorm: bool = True):
        super().__init__()
        if not factors:
            raise ValueError("ParaMETA needs at least one factor (task.factors is empty)")
        if "meta" in factors:
            raise ValueError("a factor may not be called 'meta' (the name of the META embedding)")
        self.factors = list(factors)
        self.labels = {f: list(v) for f, v in factors.items()}
        if tau is not None and (tau_supcon is not None or tau_meta is not None):
            raise ValueError("ParaMETA: give either tau (both losses) or tau_supcon / tau_meta, not both")
        self.tau_supcon = float(tau if tau is not None else 0.07 if tau_supcon is None else tau_supcon)
        self.tau_meta = float(tau if tau is not None else 0.1 if tau_meta is None else tau_meta)
        self.lam, self.use_meta, self.use_text = float(lam), bool(use_meta), bool(use_text)
        self.inference_layernorm = bool(inference_layernorm)
        self.encoder = build_encoder(dict(encoder), feat_dim)
        self.meta_proj = (nn.Identity() if self.encoder.output_dim == meta_dim
                          else nn.Linear(self.encoder.output_dim, meta_dim))
        self.subspace_proj = nn.ModuleDict({f: nn.Linear(meta_dim, subspace_dim) for f in self.factors})
        self.prototypes = PrototypeBank({f: len(self.labels[f]) for f in self.factors}, subspace_dim, momentum)
        self.text_encoder = _build_text_encoder(text_encoder) if use_text else None
        text_dim = self.text_encoder.output_dim if self.text_encoder is not None else None
        self.text_proj = (nn.ModuleDict({f: nn.Linear(text_dim, subspace_dim) for f in self.factors})
                          if text_dim is not None else None)

    @classmethod
    def from_config(cls, conf: Mapping[str, Any], task) -> "ParaMETA":
        conf = dict(conf)
        if "encoder" not in conf:
            raise KeyError("model config of 'parameta' needs an 'encoder' section, e.g. {name: lstm}")
        return cls(feat_dim=task.feat_dim, factors=task.factors, **conf)

    def parameter_counts(self, text_dim: int = 768) -> Dict[str, int]:
        """Parameter counts under both conventions.

        ``encoder``; ``speech`` = encoder + META projection (if any) + subspace projections;
        ``text_projection`` = this model's text projections (0 without text); ``model`` = speech +
        text_projection (everything trained; the frozen sentence encoder is not counted); ``paper`` =
        speech + the text projections a ``text_dim``-d sentence encoder would need (the paper's
        totals: all-mpnet-base-v2, 768-d)."""
        def n(mod):
            return sum(p.numel() for p in mod.parameters()) if mod is not None else 0
        speech = n(self.encoder) + n(self.meta_proj) + n(self.subspace_proj)
        sub = self.prototypes.dim
        text = n(self.text_proj)
        return {"encoder": n(self.encoder), "speech": speech, "text_projection": text, "model": speech + text,
                "paper": speech + len(self.factors) * (text_dim * sub + sub)}

    # ------------------------------------------------------------------ embeddings
    def embed(self, batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """-> ``{"meta": (B, meta_dim), <factor>: (B, subspace_dim), ...}``."""
        _check_batch(batch, self.factors, need_labels=False)
        h = self.encoder(batch["feats"], batch["mask"])
        meta = self.meta_proj(h)
        out = {"meta": meta}
        for f in self.factors:
            out[f] = self.subspace_proj[f](meta)
        return out

    def embed_text(self, captions: List[str]) -> Dict[str, torch.Tensor]:
        """Captions -> ``{<factor>: (B, subspace_dim)}`` text subspace embeddings."""
        if self.text_encoder is None:
            raise RuntimeError("this ParaMETA model was built with use_text: false; it has no text projection")
        t = self.text_encoder(list(captions))
        return {f: self.text_proj[f](t) for f in self.factors}

    # ------------------------------------------------------------------ training
    def forward(self, batch: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
        """-> ``{"losses": {supcon_<f>, meta, pal_speech, pal_text}, "metrics": {acc_<f>, acc_mean}}``.

        ``acc_<f>``: batch accuracy of the nearest prototype over known labels (after this batch's
        prototype update in train mode); ``acc_mean``: their mean."""
        _check_batch(batch, self.factors, need_labels=True)
        labels = {f: batch["labels"][f] for f in self.factors}
        emb = self.embed(batch)
        losses: Dict[str, torch.Tensor] = {}
        for f in self.factors:
            losses[f"supcon_{f}"] = supcon_loss(emb[f], labels[f], self.tau_supcon)
        if self.use_meta:
            losses["meta"] = meta_regularization_loss(emb["meta"], labels, self.tau_meta)
        if self.training:
            for f in self.factors:
                self.prototypes.update(f, emb[f], labels[f])
        losses["pal_speech"] = self.lam * sum(self.prototypes.alignment_loss(f, emb[f], labels[f])
                                              for f in self.factors)
        if self.use_text:
            temb = self.embed_text(_captions(batch, "ParaMETA (use_text)"))
            losses["pal_text"] = self.lam * sum(self.prototypes.alignment_loss(f, temb[f], labels[f])
                                                for f in self.factors)
        metrics: Dict[str, float] = {}
        with torch.no_grad():
            for f in self.factors:
                if bool(self.prototypes.seen(f).any()):
                    acc = _accuracy(self.prototypes.nearest(f, self._inference_norm(emb[f])), labels[f])
                    if acc is not None:
                        metrics[f"acc_{f}"] = acc
            if metrics:
                metrics["acc_mean"] = sum(metrics.values()) / len(metrics)
        return {"losses": losses, "metrics": metrics}

    # ------------------------------------------------------------------ inference
    def _inference_norm(self, emb: torch.Tensor) -> torch.Tensor:
        """``(B, S)`` -> LayerNorm over S without affine parameters (or ``emb`` itself when switched off)."""
        if not self.inference_layernorm:
            return emb
        return F.layer_norm(emb.float(), emb.shape[-1:])

    def similarities(self, sub_embs: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """``{<factor>: (B, subspace_dim)}`` -> ``{<factor>: (B, C)}`` cosine of the (LayerNorm-ed) embedding
        to each prototype; classes without a prototype get -inf."""
        return {f: self.prototypes.similarities(f, self._inference_norm(sub_embs[f]))
                for f in self.factors if f in sub_embs}

    def classify(self, sub_embs: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """``{<factor>: (B, subspace_dim)}`` -> ``{<factor>: (B,) class index of the nearest prototype}``
        (after the inference LayerNorm)."""
        return {f: s.argmax(-1) for f, s in self.similarities(sub_embs).items()}

    @torch.no_grad()
    def predict(self, batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """-> ``{<factor>: LongTensor (B,)}`` nearest prototype (cosine) per factor."""
        return self.classify(self.embed(batch))

    @torch.no_grad()
    def predict_text(self, captions: List[str]) -> Dict[str, torch.Tensor]:
        """Text prompt classification: captions -> subspaces -> nearest prototype per factor."""
        return self.classify(self.embed_text(captions))

    def class_index(self, factor: str, target: Union[int, str]) -> int:
        if factor not in self.labels:
            raise KeyError(f"unknown factor {factor!r}; model factors: {self.factors}")
        if isinstance(target, str):
            if target not in self.labels[factor]:
                raise KeyError(f"unknown {factor} class {target!r}; classes: {self.labels[factor]}")
            return self.labels[factor].index(target)
        if not 0 <= int(target) < len(self.labels[factor]):
            raise IndexError(f"{factor} class index {target} out of range [0, {len(self.labels[factor])})")
        return int(target)

    def manipulate(self, sub_embs: Mapping[str, torch.Tensor], factor: str, target_class: Union[int, str],
                   keep_norm: bool = True) -> Dict[str, torch.Tensor]:
        """Style manipulation: replace ``sub_embs[factor] (B, subspace_dim)`` by the prototype of
        ``target_class`` (index or label); every other entry (other factors, ``"meta"``) is returned unchanged.

        Prototypes are directions (alignment is by cosine), so with ``keep_norm`` the new embedding is
        the unit prototype scaled to the norm of the embedding it replaces, ``||s|| * p / ||p||``;
        without it, the unit prototype itself."""
        c = self.class_index(factor, target_class)
        if not bool(self.prototypes.seen(factor)[c]):
            raise RuntimeError(f"{factor} class {self.labels[factor][c]!r} has no prototype (never seen in training)")
        out = dict(sub_embs)
        ref = sub_embs[factor]
        proto = F.normalize(self.prototypes.prototypes(factor)[c].float(), dim=-1)   # unit norm (also after averaging)
        new = proto.unsqueeze(0).expand(ref.shape[0], -1)
        if keep_norm:
            new = new * ref.float().norm(dim=-1, keepdim=True)
        out[factor] = new.to(ref.dtype).clone()
        return out


def _default_template(factor: str) -> str:
    return "a voice speaking {label}" if factor == "language" else "a {label} voice"


@MODELS.register("clap_objective")
class CLAPObjective(nn.Module):
    """CLAP-objective baseline: one shared speech/caption space trained with symmetric InfoNCE.

    Args:
        feat_dim, factors, encoder: as for ParaMETA.
        embed_dim: size of the shared space; an encoder of that output size is used as it is, another
            gets a ``Linear(output_dim, embed_dim)``.
        tau: InfoNCE temperature.
        text_encoder: sentence encoder config (frozen; a trainable linear map projects it).
        class_templates: ``{factor: "... {label} ..."}`` class caption templates for classification.
        label_names: ``{factor: {label: words}}`` words put in the template instead of a label
            (e.g. ``{"language": {"cmn": "Chinese"}}``); other labels are used as they are.
    """

    def __init__(self, feat_dim: int, factors: Mapping[str, Sequence[str]], encoder: Mapping[str, Any],
                 embed_dim: int = 768, tau: float = 0.1, text_encoder: Optional[Mapping[str, Any]] = None,
                 class_templates: Optional[Mapping[str, str]] = None,
                 label_names: Optional[Mapping[str, Mapping[str, str]]] = None):
        super().__init__()
        self.factors = list(factors)
        self.labels = {f: list(v) for f, v in factors.items()}
        self.tau = float(tau)
        self.encoder = build_encoder(dict(encoder), feat_dim)
        self.speech_proj = (nn.Identity() if self.encoder.output_dim == embed_dim      # the paper's backbones
                            else nn.Linear(self.encoder.output_dim, embed_dim))
        self.text_encoder = _build_text_encoder(text_encoder)
        self.text_proj = nn.Linear(self.text_encoder.output_dim, embed_dim)
        templates = dict(class_templates or {})
        names = {f: dict(v) for f, v in (label_names or {}).items()}
        for f, mapping in names.items():
            unknown = sorted(set(mapping) - set(self.labels.get(f, [])))
            if unknown:
                raise ValueError(f"label_names[{f!r}] names labels {unknown} that are not in the {f} vocabulary "
                                 f"{self.labels.get(f)}")
        self.class_captions: Dict[str, List[str]] = {}
        for f in self.factors:
            tpl = templates.get(f, _default_template(f))
            if "{label}" not in tpl:
                raise ValueError(f"class template for {f!r} must contain '{{label}}', got {tpl!r}")
            self.class_captions[f] = [tpl.format(label=names.get(f, {}).get(lab, lab.replace("_", " ")))
                                      for lab in self.labels[f]]

    @classmethod
    def from_config(cls, conf: Mapping[str, Any], task) -> "CLAPObjective":
        conf = dict(conf)
        if "encoder" not in conf:
            raise KeyError("model config of 'clap_objective' needs an 'encoder' section")
        return cls(feat_dim=task.feat_dim, factors=task.factors, **conf)

    def embed(self, batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """-> ``{"shared": (B, embed_dim)}``."""
        _check_batch(batch, self.factors, need_labels=False)
        return {"shared": self.speech_proj(self.encoder(batch["feats"], batch["mask"]))}

    def embed_text(self, captions: List[str]) -> torch.Tensor:
        """Captions -> ``(B, embed_dim)`` in the shared space."""
        return self.text_proj(self.text_encoder(list(captions)))

    def class_scores(self, speech: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``speech (B, embed_dim)`` -> ``{<factor>: (B, C)}`` cosine similarity to each class caption."""
        z = F.normalize(speech, dim=-1)
        return {f: z @ F.normalize(self.embed_text(self.class_captions[f]), dim=-1).t() for f in self.factors}

    def forward(self, batch: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
        """-> ``{"losses": {"clap": ...}, "metrics": {acc_<f>, acc_mean}}`` (accuracy by nearest class caption)."""
        caps = _captions(batch, "clap_objective")
        speech = self.embed(batch)["shared"]
        text = self.embed_text(caps)
        same = torch.tensor([[a == b for b in caps] for a in caps], device=speech.device)
        losses = {"clap": symmetric_info_nce(speech, text, self.tau, positives=same)}
        metrics: Dict[str, float] = {}
        with torch.no_grad():
            for f, s in self.class_scores(speech).items():
                if f in batch.get("labels", {}):
                    acc = _accuracy(s.argmax(-1), batch["labels"][f])
                    if acc is not None:
                        metrics[f"acc_{f}"] = acc
            if metrics:
                metrics["acc_mean"] = sum(metrics.values()) / len(metrics)
        return {"losses": losses, "metrics": metrics}

    @torch.no_grad()
    def predict(self, batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """-> ``{<factor>: (B,)}`` index of the most similar class caption."""
        return {f: s.argmax(-1) for f, s in self.class_scores(self.embed(batch)["shared"]).items()}
