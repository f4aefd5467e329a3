"""Transcription metrics: greedy CTC decoding and character / word error rates.

error rate = (S + D + I) / N, summed over utterances: the Levenshtein distance between the
reference and hypothesis sequences (characters for CER, space-separated words for WER) divided by
the total reference length N.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch
import torchaudio


def ctc_collapse(ids: Sequence[int], blank: int = 0) -> List[int]:
    """Collapse runs of repeated ids, then drop blanks: ``[1, 1, 0, 1, 2, 2] -> [1, 1, 2]``."""
    out, prev = [], None
    for i in ids:
        i = int(i)
        if i != prev and i != blank:
            out.append(i)
        prev = i
    return out


def ctc_greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> List[List[int]]:
    """Best path per utterance: argmax per frame over ``(B, T, V)`` scores, first ``lengths[b]`` frames, collapsed."""
    best = log_probs.argmax(-1).cpu()
    return [ctc_collapse(best[b, : int(lengths[b])].tolist(), blank) for b in range(best.shape[0])]


def edit_errors(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> Dict[str, int]:
    """``{"errors": sum of edit distances, "ref_len": sum of reference lengths}``."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errors = sum(torchaudio.functional.edit_distance(list(r), list(h)) for r, h in zip(refs, hyps))
    return {"errors": int(errors), "ref_len": int(sum(len(r) for r in refs))}


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Character error rate (spaces count as characters)."""
    e = edit_errors([list(r) for r in refs], [list(h) for h in hyps])
    return e["errors"] / max(e["ref_len"], 1)


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Word error rate over whitespace-separated words."""
    e = edit_errors([r.split() for r in refs], [h.split() for h in hyps])
    return e["errors"] / max(e["ref_len"], 1)
