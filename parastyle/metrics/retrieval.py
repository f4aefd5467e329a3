"""Cross-modal retrieval metrics over de-duplicated captions (R@k, median and mean rank).

Many clips share one caption, so captions are de-duplicated first (:func:`unique_captions`):
``C`` unique captions, ``N`` clips, ``caption_index[i]`` = the unique caption of clip ``i``.
Similarity is the cosine ``S (N, C)``. Ranks are 1-based; ties count against the correct item
(a model that scores everything equal gets the worst rank, never the best).

* audio -> text: the query is clip ``i``; its correct caption is ``c = caption_index[i]``::

      rank_i = 1 + #{ j != c : S[i, j] >= S[i, c] }

* text -> audio: the query is caption ``c``; its positives are all clips ``P(c)`` carrying it.
  A caption's rank is the best rank among its clips, i.e. the position of the first positive in
  the clip list sorted by similarity, with negatives winning ties::

      rank_c = 1 + #{ k not in P(c) : S[k, c] >= max_{i in P(c)} S[i, c] }

``R@k`` = fraction of queries with ``rank <= k``; ``median_rank`` and ``mean_rank`` over queries.
A random ranking gives audio->text ``R@k = min(k, C) / C`` on average.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F


def unique_captions(captions: Sequence[str]) -> Tuple[List[str], torch.Tensor]:
    """``captions`` (one per clip) -> (unique captions in first-seen order, ``(N,)`` long index)."""
    uniq: Dict[str, int] = {}
    index = []
    for c in captions:
        index.append(uniq.setdefault(c, len(uniq)))
    return list(uniq), torch.tensor(index, dtype=torch.long)


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N, D)``, ``(C, D)`` -> ``(N, C)`` cosine similarities."""
    return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).t()


def audio_to_text_ranks(sim: torch.Tensor, caption_index: torch.Tensor) -> torch.Tensor:
    """``sim (N, C)``, ``caption_index (N,)`` -> ``(N,)`` 1-based rank of each clip's caption."""
    n = sim.shape[0]
    correct = sim[torch.arange(n), caption_index]                       # (N,)
    ge = sim >= correct[:, None]                                         # (N, C), includes the correct one
    return ge.sum(1).long()


def text_to_audio_ranks(sim: torch.Tensor, caption_index: torch.Tensor) -> torch.Tensor:
    """``sim (N, C)``, ``caption_index (N,)`` -> ``(C,)`` 1-based rank of each caption's best clip.

    Captions without any clip raise ValueError.
    """
    n, c = sim.shape
    pos = F.one_hot(caption_index, c).bool()                            # (N, C)
    if not bool(pos.any(0).all()):
        missing = (~pos.any(0)).nonzero().flatten().tolist()
        raise ValueError(f"captions {missing[:5]} have no clip")
    best_pos = sim.masked_fill(~pos, float("-inf")).max(0).values       # (C,)
    neg_ge = (sim >= best_pos[None, :]) & ~pos                          # (N, C)
    return 1 + neg_ge.sum(0).long()


def _summary(ranks: torch.Tensor, prefix: str, ks: Sequence[int]) -> Dict[str, float]:
    r = ranks.double()
    out = {f"{prefix}_R@{k}": float((r <= k).double().mean()) for k in ks}
    s = r.sort().values
    mid = len(s) // 2
    out[f"{prefix}_median_rank"] = float(s[mid]) if len(s) % 2 else float((s[mid - 1] + s[mid]) / 2)
    out[f"{prefix}_mean_rank"] = float(r.mean())
    return out


def retrieval_metrics(audio_emb: torch.Tensor, text_emb: torch.Tensor, caption_index: torch.Tensor,
                      ks: Sequence[int] = (1, 5, 10)) -> Dict[str, float]:
    """All retrieval metrics in both directions.

    Args:
        audio_emb: ``(N, D)`` clip embeddings.
        text_emb: ``(C, D)`` embeddings of the unique captions.
        caption_index: ``(N,)`` index of each clip's caption in ``text_emb``.
    Returns:
        ``{"a2t_R@k", "a2t_median_rank", "a2t_mean_rank", "t2a_R@k", "t2a_median_rank",
        "t2a_mean_rank", "num_clips", "num_captions", "a2t_R@k_random"}``; the median of an even
        number of ranks is the mean of the two middle ranks.
    """
    caption_index = caption_index.to(audio_emb.device).long()
    sim = cosine_similarity_matrix(audio_emb, text_emb)
    out = _summary(audio_to_text_ranks(sim, caption_index), "a2t", ks)
    out.update(_summary(text_to_audio_ranks(sim, caption_index), "t2a", ks))
    n, c = sim.shape
    out["num_clips"], out["num_captions"] = n, c
    for k in ks:
        out[f"a2t_R@{k}_random"] = min(k, c) / c
    return out
