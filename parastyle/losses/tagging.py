"""Multi-label tag classification through the text tower (ParaSpeechCLAP's intrinsic-tag loss).

Each tag ``m`` has a list of paraphrased captions (a JSON file per recipe,
``{"<tag>": ["<caption 1>", "<caption 2>", ...], ...}``). For every minibatch one paraphrase per
tag is drawn (:meth:`TagParaphrases.sample`, with the caller's ``torch.Generator``), the text
tower encodes the ``M`` paraphrases into tag embeddings, and :func:`tag_bce_loss` scores every
utterance against every tag.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from parastyle.fileio import DataError

PathLike = Union[str, os.PathLike]


class TagParaphrases:
    """Tag vocabulary (JSON key order) with its paraphrased captions.

    ``tags``: list of tag names (index = column of the multi-hot target); ``paraphrases[tag]``:
    non-empty list of strings.
    """

    def __init__(self, paraphrases: Dict[str, List[str]], source: str = "<dict>"):
        if not isinstance(paraphrases, dict) or not paraphrases:
            raise DataError(f"{source}: expected a non-empty JSON object tag -> list of paraphrases")
        for tag, items in paraphrases.items():
            if (not isinstance(items, list) or not items
                    or not all(isinstance(s, str) and s.strip() for s in items)):
                raise DataError(f"{source}: tag {tag!r} must map to a non-empty list of non-empty strings, "
                                f"got {items!r}")
        self.paraphrases = {t: list(v) for t, v in paraphrases.items()}
        self.tags = list(self.paraphrases)
        self.index = {t: i for i, t in enumerate(self.tags)}
        self.source = source

    @classmethod
    def from_json(cls, path: PathLike) -> "TagParaphrases":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: tag paraphrase file not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
        return cls(data, source=str(path))

    def __len__(self) -> int:
        return len(self.tags)

    def sample(self, generator: Optional[torch.Generator] = None) -> List[str]:
        """One paraphrase per tag, in tag order: ``list[str]`` of length ``M``."""
        out = []
        for tag in self.tags:
            items = self.paraphrases[tag]
            k = int(torch.randint(len(items), (1,), generator=generator))
            out.append(items[k])
        return out

    def multi_hot(self, tags: Sequence[Sequence[str]], utt_ids: Optional[Sequence[str]] = None,
                  ignore_unknown: bool = False) -> torch.Tensor:
        """``tags`` (per utterance list of tag names) -> ``(B, M)`` float 0/1 target.

        A tag missing from the paraphrase file raises DataError naming the utterance, unless
        ``ignore_unknown`` (then such tags are left out of the target — used when the data carries
        tags of another family, e.g. situational tags next to the intrinsic vocabulary).
        """
        y = torch.zeros(len(tags), len(self.tags))
        for b, utt_tags in enumerate(tags):
            for tag in utt_tags:
                j = self.index.get(tag)
                if j is None:
                    if ignore_unknown:
                        continue
                    who = utt_ids[b] if utt_ids is not None else f"batch item {b}"
                    raise DataError(f"{who}: tag {tag!r} is not in {self.source} "
                                    f"(known: {', '.join(self.tags)})")
                y[b, j] = 1.0
        return y


def tag_logits(speech: torch.Tensor, tag_emb: torch.Tensor) -> torch.Tensor:
    """``speech (B, D)``, ``tag_emb (M, D)`` -> ``(B, M)`` logits ``z_bm = cos(s_b, t_m)``.

    The plain cosine, as in ParaSpeechCLAP and its authors' code: no logit scale (so the tag loss
    never moves the InfoNCE temperature) and no bias.
    """
    return F.normalize(speech, dim=-1) @ F.normalize(tag_emb, dim=-1).t()


def tag_bce_loss(speech: torch.Tensor, tag_emb: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of every utterance against every tag.

    ``speech (B, D)``, ``tag_emb (M, D)``, ``targets (B, M)`` in {0, 1}::

        z_bm = cos(s_b, t_m)
        L = -1/(B M) sum_b sum_m [ y_bm log sigmoid(z_bm) + (1 - y_bm) log(1 - sigmoid(z_bm)) ]
    """
    if targets.shape != (speech.shape[0], tag_emb.shape[0]):
        raise ValueError(f"tag_bce_loss: targets {tuple(targets.shape)} != (B, M) = "
                         f"({speech.shape[0]}, {tag_emb.shape[0]})")
    z = tag_logits(speech, tag_emb)
    return F.binary_cross_entropy_with_logits(z, targets.to(z.dtype))
