"""Multi-task cross-entropy baseline: one encoder, one linear classifier per style factor.

Loss: for each factor f with labels ``y_f`` (IGNORE_INDEX where unknown)::

    L_f = - (1 / |K_f|) * sum_{i in K_f} log softmax(W_f e_i + b_f)[y_{f,i}],  K_f = {i : y_{f,i} != -100}
    L   = sum_f w_f * L_f

A factor with no known label in the batch contributes a zero loss and no accuracy.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from parastyle.data.collate import IGNORE_INDEX
from parastyle.models import MODELS
from parastyle.nn.encoders import build_encoder


@MODELS.register("multitask_ce")
class MultiTaskCE(nn.Module):
    """Encoder from config + ``nn.Linear(E, n_classes)`` per factor.

    Args:
        encoder: the encoder module (``forward(x (B,T,D), mask (B,T)) -> (B, E)``, ``.output_dim``).
        factors: ``{factor: [labels]}``.
        loss_weights: optional ``{factor: weight}`` (default 1).
        dropout: dropout on the embedding before the heads.
    """

    def __init__(self, encoder: nn.Module, factors: Dict[str, list], loss_weights: Optional[Dict[str, float]] = None,
                 dropout: float = 0.0):
        super().__init__()
        if not factors:
            raise ValueError("multitask_ce needs at least one factor")
        self.encoder = encoder
        self.factors = {f: list(v) for f, v in factors.items()}
        self.heads = nn.ModuleDict({f: nn.Linear(encoder.output_dim, len(v)) for f, v in self.factors.items()})
        self.loss_weights = {f: float((loss_weights or {}).get(f, 1.0)) for f in self.factors}
        unknown = set(loss_weights or {}) - set(self.factors)
        if unknown:
            raise ValueError(f"loss_weights for unknown factors {sorted(unknown)}; factors: {sorted(self.factors)}")
        self.dropout = nn.Dropout(dropout)

    @classmethod
    def from_config(cls, conf: Dict[str, Any], task) -> "MultiTaskCE":
        """``conf = {"encoder": {"name": ..., ...}, "loss_weights": {...}, "dropout": p}``."""
        conf = dict(conf)
        enc_conf = conf.pop("encoder", {"name": "tdnn"})
        encoder = build_encoder(enc_conf, task.feat_dim)
        return cls(encoder, task.factors, **conf)

    def logits(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """``{factor: (B, C_f)}`` logits."""
        emb = self.dropout(self.encoder(batch["feats"], batch["mask"]))
        return {f: head(emb) for f, head in self.heads.items()}

    def forward(self, batch: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        """Losses ``ce_<factor>`` (weighted); metrics ``acc_<factor>`` over known labels and their mean ``acc_mean``."""
        logits = self.logits(batch)
        losses, metrics = {}, {}
        for f, z in logits.items():
            y = batch["labels"][f]
            known = y != IGNORE_INDEX
            if not bool(known.any()):
                # keep the head in the graph (DDP needs every parameter used); contributes 0
                losses[f"ce_{f}"] = z.sum() * 0.0
                continue
            losses[f"ce_{f}"] = self.loss_weights[f] * F.cross_entropy(z.float(), y, ignore_index=IGNORE_INDEX)
            metrics[f"acc_{f}"] = (z.argmax(-1)[known] == y[known]).float().mean().detach()
        if metrics:
            metrics["acc_mean"] = torch.stack([metrics[k] for k in list(metrics)]).mean()
        return {"losses": losses, "metrics": metrics}

    @torch.no_grad()
    def predict(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """``{factor: (B,)}`` predicted class indices."""
        return {f: z.argmax(-1) for f, z in self.logits(batch).items()}

    @torch.no_grad()
    def embed(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """``{"utterance": (B, E)}`` encoder embeddings."""
        return {"utterance": self.encoder(batch["feats"], batch["mask"])}
