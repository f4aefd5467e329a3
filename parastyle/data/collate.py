"""Collate dataset items into the padded batch dict shared by every model.

Batch keys (see the project contract)::

    utt_ids   list[str]
    feats     FloatTensor (B, T, D)  zero-padded (waveforms: (B, S, 1))
    feat_lens LongTensor  (B,)
    mask      BoolTensor  (B, T)     True on valid frames
    labels    {factor: LongTensor (B,)}  IGNORE_INDEX (-100) where the label is unknown
    speakers  list[str]
    captions  list[str]        only when every item has a caption
    tags      list[list[str]]  only when every item has tags
    text      list[str]        only when every item has text
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch

try:
    from parastyle.data import IGNORE_INDEX  # type: ignore[attr-defined]
except ImportError:  # the package constant is defined by parastyle/data/__init__.py when present
    IGNORE_INDEX = -100


def collate_batch(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Pad a list of items into a batch.

    Each item is ``{"utt_id": str, "feats": (T, D) float tensor, "labels": {factor: int},
    "speaker": str, optional "caption": str, "tags": list[str], "text": str}``; a factor whose
    label is unknown holds IGNORE_INDEX.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    lens = torch.tensor([it["feats"].shape[0] for it in items], dtype=torch.long)
    dim = items[0]["feats"].shape[1]
    feats = torch.zeros(len(items), int(lens.max()), dim, dtype=torch.float32)
    for i, it in enumerate(items):
        feats[i, : it["feats"].shape[0]] = it["feats"]
    mask = torch.arange(feats.shape[1])[None, :] < lens[:, None]
    factors = items[0]["labels"].keys()
    batch: Dict[str, Any] = {
        "utt_ids": [it["utt_id"] for it in items],
        "feats": feats,
        "feat_lens": lens,
        "mask": mask,
        "labels": {f: torch.tensor([it["labels"][f] for it in items], dtype=torch.long) for f in factors},
        "speakers": [it["speaker"] for it in items],
    }
    for item_key, batch_key in (("caption", "captions"), ("tags", "tags"), ("text", "text")):
        if all(it.get(item_key) is not None for it in items):
            batch[batch_key] = [it[item_key] for it in items]
    return batch


def move_batch(batch: Dict[str, Any], device) -> Dict[str, Any]:
    """Copy every tensor of a batch (including the label dict) to ``device``."""
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            out[k] = v.to(device, non_blocking=True)
        elif isinstance(v, dict):
            out[k] = {kk: vv.to(device, non_blocking=True) if torch.is_tensor(vv) else vv for kk, vv in v.items()}
        else:
            out[k] = v
    return out
