"""Objective metrics of generated speech.

Mel-cepstral distortion (copy synthesis, frames aligned one to one, no DTW)::

    c_t = DCT-II_ortho(logmel_t)[1 : K + 1]                 (log-mel of the ParaMETA front-end, natural log)
    MCD = (1 / T) sum_t (10 / ln 10) * sqrt(2 * sum_k (c_{t,k} - c'_{t,k})^2)      [dB]

The two sequences must have the same number of frames up to ``max_length_diff`` (copy synthesis
keeps the ground-truth durations; the longer one is cut), else the pair is refused.

F0 statistics of one utterance over its voiced frames (F0 > 0, Hz): mean, standard deviation,
range = P95 - P5 (Hz) and in semitones ``12 log2(P95 / P5)``. Class statistics are the means of the
per-utterance statistics over the utterances of the class (every utterance weighs the same).

Judge accuracy: ``sum_u [pred_u == target_u] / |U|`` over the utterances with a target.
Manipulation (utterance ``u`` had factor ``f_u`` replaced by a target class): success of factor f =
accuracy of the judge's f prediction against the target over ``{u : f_u = f}``; preservation of
factor f = accuracy of every other factor g's prediction against u's (unchanged) target of g over
the same utterances, pooled over g (``preservation_per_factor`` gives each g).

Speaker similarity: cosine of two speaker embeddings (resemblyzer's pretrained d-vector encoder,
weights inside its PyPI package; audio resampled to its 16 kHz).

Best-of-N: per group (one prompt, N ranked candidates) a per-candidate value v (1/0 correct, or
edit errors): chosen = v(rank 1), worst = v(rank N), random = mean over the group's candidates
(the expectation of a uniformly random pick); reported as means over groups (errors: summed and
divided by the summed reference lengths).
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

MCD_CONST = 10.0 / math.log(10.0) * math.sqrt(2.0)


# ---------------------------------------------------------------------------- MCD
def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``D (n, n)``: ``c = D @ x``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi / n * (i + 0.5) * k) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def mel_cepstrum(logmel: torch.Tensor, n_coeffs: int = 24) -> torch.Tensor:
    """``(T, M)`` log-mel -> ``(T, n_coeffs)`` cepstral coefficients 1..n_coeffs (c0, the energy, dropped)."""
    if logmel.dim() != 2:
        raise ValueError(f"log-mel must be (T, M), got {tuple(logmel.shape)}")
    m = logmel.shape[1]
    if not 1 <= n_coeffs < m:
        raise ValueError(f"n_coeffs must be in [1, {m - 1}], got {n_coeffs}")
    c = logmel.double() @ dct_matrix(m).T
    return c[:, 1: n_coeffs + 1]


def mcd(ref_logmel: torch.Tensor, gen_logmel: torch.Tensor, n_coeffs: int = 24, max_length_diff: int = 2,
        name: str = "") -> float:
    """Mean frame MCD (dB) of two log-mels aligned frame by frame (see the module docstring)."""
    tr, tg = ref_logmel.shape[0], gen_logmel.shape[0]
    if abs(tr - tg) > max_length_diff:
        raise ValueError(f"{name + ': ' if name else ''}{tr} reference frames vs {tg} generated frames differ by "
                         f"more than {max_length_diff}: not a copy synthesis (frame-aligned MCD needs the same "
                         f"durations)")
    t = min(tr, tg)
    a, b = mel_cepstrum(ref_logmel[:t], n_coeffs), mel_cepstrum(gen_logmel[:t], n_coeffs)
    return float((MCD_CONST * torch.sqrt(((a - b) ** 2).sum(-1))).mean())


# ---------------------------------------------------------------------------- F0
def f0_contour(wav, sample_rate: int, time_step: float = 0.01, floor: float = 60.0, ceiling: float = 600.0) -> np.ndarray:
    """F0 (Hz, 0 = unvoiced) every ``time_step`` s by Praat's autocorrelation tracker (praat-parselmouth)."""
    import parselmouth
    x = wav.detach().cpu().numpy() if torch.is_tensor(wav) else np.asarray(wav)
    snd = parselmouth.Sound(x.astype(np.float64), sampling_frequency=float(sample_rate))
    pitch = snd.to_pitch(time_step=time_step, pitch_floor=floor, pitch_ceiling=ceiling)
    f0 = pitch.selected_array["frequency"]
    return np.nan_to_num(np.asarray(f0, dtype=np.float64), nan=0.0)


def f0_stats(f0: Sequence[float]) -> Optional[Dict[str, float]]:
    """``{"mean_hz", "std_hz", "range_hz", "range_st", "voiced"}`` over voiced frames; None if none is voiced."""
    v = np.asarray([x for x in f0 if x > 0], dtype=np.float64)
    if v.size == 0:
        return None
    p5, p95 = np.percentile(v, 5), np.percentile(v, 95)
    return {"mean_hz": float(v.mean()), "std_hz": float(v.std()), "range_hz": float(p95 - p5),
            "range_st": float(12.0 * math.log2(p95 / p5)), "voiced": int(v.size)}


def f0_class_stats(f0s: Mapping[str, Sequence[float]], labels: Mapping[str, str]) -> Dict[str, Dict[str, float]]:
    """Per class: means of the per-utterance :func:`f0_stats` (``n`` utterances; unvoiced ones counted apart)."""
    per: Dict[str, List[Dict[str, float]]] = {}
    unvoiced: Dict[str, int] = {}
    for utt, lab in labels.items():
        if utt not in f0s:
            continue
        s = f0_stats(f0s[utt])
        if s is None:
            unvoiced[lab] = unvoiced.get(lab, 0) + 1
            continue
        per.setdefault(lab, []).append(s)
    out = {}
    for lab in sorted(set(per) | set(unvoiced)):
        rows = per.get(lab, [])
        d = {k: float(np.mean([r[k] for r in rows])) for k in ("mean_hz", "std_hz", "range_hz", "range_st")} \
            if rows else {}
        d.update({"n": len(rows), "unvoiced": unvoiced.get(lab, 0)})
        out[lab] = d
    return out


# ---------------------------------------------------------------------------- judge scores
def judge_accuracy(pred: Mapping[str, str], target: Mapping[str, str]) -> Optional[Dict[str, float]]:
    """``{"accuracy", "n"}`` of predictions against the targets (every target utterance needs a prediction)."""
    missing = [u for u in target if u not in pred]
    if missing:
        raise KeyError(f"no judge prediction for {len(missing)} utterance(s), e.g. {missing[:3]}")
    if not target:
        return None
    hits = sum(1 for u, t in target.items() if pred[u] == t)
    return {"accuracy": hits / len(target), "n": len(target)}


def manipulation_scores(pred: Mapping[str, Mapping[str, str]], target: Mapping[str, Mapping[str, str]],
                        manipulated: Mapping[str, str]) -> Dict[str, Dict[str, object]]:
    """Success and preservation per manipulated factor (see the module docstring).

    ``pred``/``target``: ``{factor: {utt: label}}``; ``manipulated``: ``{utt: factor it was moved in}``.
    """
    out: Dict[str, Dict[str, object]] = {}
    for f in sorted(set(manipulated.values())):
        utts = sorted(u for u, g in manipulated.items() if g == f)
        if f not in target or f not in pred:
            raise KeyError(f"manipulated factor {f!r} has no target labels or no judge head")
        tgt = {u: target[f][u] for u in utts if u in target[f]}
        succ = judge_accuracy(pred[f], tgt)
        keep_hits, keep_n, per = 0, 0, {}
        for g in sorted(target):
            if g == f or g not in pred:
                continue
            tg = {u: target[g][u] for u in utts if u in target[g]}
            if not tg:
                continue
            acc = judge_accuracy(pred[g], tg)
            per[g] = acc["accuracy"]
            keep_hits += round(acc["accuracy"] * acc["n"])
            keep_n += acc["n"]
        out[f] = {"success": succ["accuracy"] if succ else None, "n": len(tgt),
                  "preservation": keep_hits / keep_n if keep_n else None, "preservation_per_factor": per}
    return out


# ---------------------------------------------------------------------------- speaker similarity
def cosine(a, b) -> float:
    a = torch.as_tensor(np.asarray(a), dtype=torch.float64).flatten()
    b = torch.as_tensor(np.asarray(b), dtype=torch.float64).flatten()
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-12))


class SpeakerEncoder:
    """resemblyzer's d-vector encoder (weights shipped in the package): ``embed(wav, sample_rate) -> (256,)``.

    Preprocessing as resemblyzer's ``preprocess_wav``: resampling to 16 kHz, volume normalisation,
    its VAD-based trimming of long silences. A recording in which the VAD finds (almost) no speech
    is embedded untrimmed and counted in ``untrimmed``.
    """

    sample_rate = 16000

    def __init__(self, device: str = "cpu"):
        from resemblyzer import VoiceEncoder
        self.encoder = VoiceEncoder(device=device, verbose=False)
        self.untrimmed = 0

    def embed(self, wav, sample_rate: int) -> np.ndarray:
        from resemblyzer.audio import normalize_volume, trim_long_silences
        from resemblyzer.hparams import audio_norm_target_dBFS
        x = wav.detach().cpu().float() if torch.is_tensor(wav) else torch.as_tensor(np.asarray(wav, dtype=np.float32))
        if int(sample_rate) != self.sample_rate:
            import torchaudio.functional as AF
            x = AF.resample(x, int(sample_rate), self.sample_rate)
        x = normalize_volume(x.numpy().astype(np.float64), audio_norm_target_dBFS, increase_only=True)
        trimmed = trim_long_silences(x)
        if trimmed.size < self.sample_rate // 10:
            self.untrimmed += 1
            trimmed = x
        if trimmed.size < self.sample_rate // 10:
            raise ValueError(f"{trimmed.size} samples: too short for a speaker embedding (need 0.1 s)")
        return self.encoder.embed_utterance(trimmed.astype(np.float32))


# ---------------------------------------------------------------------------- best-of-N
def selection_scores(rankings: Mapping[str, Sequence[str]], value: Mapping[str, float]) -> Dict[str, float]:
    """``{"chosen", "random", "worst", "groups"}``: means over groups of v(rank 1), mean v, v(rank N)."""
    if not rankings:
        raise ValueError("no group to select in")
    chosen, rnd, worst = [], [], []
    for g, ranked in rankings.items():
        if not ranked:
            raise ValueError(f"group {g!r} has no candidate")
        vals = [float(value[c]) for c in ranked]
        chosen.append(vals[0])
        worst.append(vals[-1])
        rnd.append(float(np.mean(vals)))
    return {"chosen": float(np.mean(chosen)), "random": float(np.mean(rnd)), "worst": float(np.mean(worst)),
            "groups": len(rankings)}


def selection_error_rates(rankings: Mapping[str, Sequence[str]], errors: Mapping[str, int],
                          ref_len: Mapping[str, int]) -> Dict[str, float]:
    """Error rates (sum of edit errors / sum of reference lengths) of the chosen, a random, the worst candidate."""
    tot = sum(int(ref_len[g]) for g in rankings)
    if tot == 0:
        raise ValueError("reference transcripts are empty")
    e_chosen = sum(errors[r[0]] for r in rankings.values())
    e_worst = sum(errors[r[-1]] for r in rankings.values())
    e_rand = sum(float(np.mean([errors[c] for c in r])) for r in rankings.values())
    return {"chosen": e_chosen / tot, "random": e_rand / tot, "worst": e_worst / tot, "groups": len(rankings)}
