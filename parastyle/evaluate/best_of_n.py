"""Best-of-N selection: rank N candidate waveforms (e.g. TTS outputs) by their match to a style prompt.

Each candidate is embedded by the exp's speech tower, the prompt by its text tower, and the
candidates are sorted by cosine similarity (ties by id); the first is the one to keep.

Models: a CLAP exp (``embed_text`` returns one tensor) or a ParaMETA exp (``embed_text`` returns a
dict of subspaces: the L2-normalised subspaces shared by speech and text are concatenated, so the
cosine is the mean of the per-subspace cosines; :func:`parastyle.models.clap.joint_embeddings`).

Prompts: one text for every group, or (ParaMETA) per-group prompts ``{subspace: text}``: the
subspace ``g`` of the prompt side is the text embedding of ``prompts[g]``, and the score is the
mean over the prompted subspaces of ``cos(speech_g, text_g)``; every subspace's cosine is also
returned (``CandidateScore.groups``).

Features are computed on the fly with the exp's front-end: ``data.frontend`` of its config, or
for an exp trained on pre-extracted features (``data.feats: true``) the training data dir's
``feats_conf.yaml`` (or an explicit ``feats_conf``), with the exp's CMVN. An explicit
``feats_conf`` that differs from the recorded training front-end is refused
(:func:`parastyle.evaluate.checks.check_frontend`). A non-finite embedding stops with the candidate id.

:func:`score_candidates` is the library entry point (candidates given as ``(id, wav path or
wav.scp entry or waveform)``); :func:`rank_candidates` reads a directory of ``.wav`` files or a
``wav.scp`` (the ``parastyle.bin.best_of_n`` verb).
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from parastyle.data.collate import move_batch
from parastyle.evaluate.checks import (canonical_frontend, check_batch_finite, check_finite, check_model_finite,
                                       training_frontend)
from parastyle.fileio import DataError, read_kv, write_kv
from parastyle.train.build import build_dataloader
from parastyle.train.checkpoint import load_model_from_exp

logger = logging.getLogger(__name__)

Waveform = Union[np.ndarray, torch.Tensor]
CandidateAudio = Union[str, os.PathLike, Waveform]
Prompt = Union[str, Mapping[str, str]]


@dataclass
class CandidateScore:
    """One ranked candidate: ``score`` is the mean cosine over the prompted groups."""

    id: str
    score: float
    rank: int
    groups: Dict[str, float] = field(default_factory=dict)


def read_candidates(candidates) -> Dict[str, str]:
    """``{id: wav path or wav.scp entry}`` from a directory of ``.wav`` files or a wav.scp file."""
    p = Path(candidates)
    if p.is_dir():
        wavs = sorted(p.glob("*.wav"))
        if not wavs:
            raise DataError(f"{p}: no .wav file")
        out = {}
        for w in wavs:
            key = w.stem
            if any(c.isspace() for c in key):
                raise DataError(f"{w}: file name contains whitespace (cannot be a Kaldi key)")
            out[key] = str(w.resolve())
        return out
    if p.is_file():
        table = read_kv(p)
        if not table:
            raise DataError(f"{p}: no candidate")
        return table
    raise DataError(f"{p}: not a directory of .wav files nor a wav.scp file")


def on_the_fly_config(config: dict, feats_conf: Optional[str] = None, exp_dir=None) -> dict:
    """The exp config with features computed from waveforms by the training front-end
    (checked against ``<exp_dir>/identity.yaml`` when given)."""
    config = dict(config)
    data = dict(config["data"])
    if data.get("feats"):
        recorded, where = training_frontend(config, exp_dir)
        given = None
        if feats_conf:
            path = Path(feats_conf)
            if not path.is_file():
                raise DataError(f"{path}: feats_conf not found")
            with open(path, encoding="utf-8") as f:
                given = yaml.safe_load(f)
            if recorded is not None:
                a, b = canonical_frontend(recorded, where), canonical_frontend(given, str(path))
                diff = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
                if "type" in diff:      # another kind of front-end: its parameters are not comparable
                    diff = {"type": diff["type"]}
                if diff:
                    listing = ", ".join(f"{k}: {x!r} (training) vs {y!r} (given)" for k, (x, y) in diff.items())
                    raise DataError(f"{path}: not the front-end the exp was trained on ({where}): {listing}")
        conf = given if given is not None else recorded
        if conf is None:
            raise DataError(f"the exp was trained on pre-extracted features and its front-end is not recorded "
                            f"({where} not found); give feats_conf (the training data dir's feats_conf.yaml)")
        data["frontend"] = dict(conf)
        data["feats"] = False
    config["data"] = data
    return config


def _check_id(cid: str) -> str:
    cid = str(cid)
    if not cid or any(c.isspace() for c in cid):
        raise DataError(f"candidate id {cid!r}: must be non-empty without whitespace (a Kaldi key)")
    return cid


class BestOfN:
    """A loaded exp that scores candidates against prompts (load once, score many prompt/candidate sets)."""

    def __init__(self, exp, checkpoint: Optional[str] = None, feats_conf: Optional[str] = None,
                 device: str = "cpu"):
        self.exp = Path(exp)
        self.device = device
        self.model, config, self.task = load_model_from_exp(self.exp, checkpoint, map_location=device)
        self.model.to(device).eval()
        check_model_finite(self.model, str(self.exp))
        self.config = on_the_fly_config(config, feats_conf, self.exp)
        self._single_text: Optional[bool] = None

    def _text_is_single(self) -> bool:
        """True when ``embed_text`` returns one tensor (CLAP): the speech side's one embedding is ``shared``."""
        if self._single_text is None:
            with torch.no_grad():
                self._single_text = bool(torch.is_tensor(self.model.embed_text(["a person is speaking"])))
        return self._single_text

    @property
    def sample_rate(self) -> int:
        return int(self.config["data"]["frontend"].get("sample_rate", 16000))

    def embed_candidates(self, candidates: Sequence[Tuple[str, CandidateAudio]],
                         sample_rate: Optional[int] = None) -> Tuple[List[str], Dict[str, torch.Tensor]]:
        """``(ids, {group: (N, D_g) L2-normalised})`` of candidate audio (paths/entries or waveforms ``(S,)``
        at ``sample_rate``); ``group`` is ``"shared"`` for a CLAP model, the subspaces for ParaMETA."""
        import soundfile as sf
        if not candidates:
            raise DataError("no candidate to rank")
        ids = [_check_id(c) for c, _ in candidates]
        dup = sorted({c for c in ids if ids.count(c) > 1})
        if dup:
            raise DataError(f"duplicate candidate id(s): {dup[:5]}")
        with tempfile.TemporaryDirectory(prefix="best_of_n.") as tmp:
            table = {}
            for cid, audio in candidates:
                if isinstance(audio, (str, os.PathLike)):
                    table[str(cid)] = str(audio)
                    continue
                wav = audio.detach().cpu().numpy() if torch.is_tensor(audio) else np.asarray(audio)
                if wav.ndim != 1:
                    raise DataError(f"candidate {cid!r}: expected a mono waveform (S,), got shape {wav.shape}")
                if sample_rate is None:
                    raise DataError(f"candidate {cid!r} is a waveform: give its sample_rate")
                if not np.isfinite(wav).all():
                    raise DataError(f"candidate {cid!r}: {int((~np.isfinite(wav)).sum())} non-finite sample(s)")
                path = Path(tmp) / f"cand{len(table)}.wav"
                sf.write(path, wav.astype(np.float32), int(sample_rate), subtype="FLOAT")
                table[str(cid)] = str(path)
            write_kv(Path(tmp) / "wav.scp", table)
            write_kv(Path(tmp) / "utt2spk", {k: k for k in table})
            loader = build_dataloader(self.config, tmp, task=self.task, train=False)
            out_ids: List[str] = []
            groups: Dict[str, List[torch.Tensor]] = {}
            with torch.no_grad():
                for batch in loader:
                    check_batch_finite(batch, "best_of_n candidates")
                    batch = move_batch(batch, self.device)
                    emb = self.model.embed(batch)
                    if self._text_is_single():
                        if len(emb) != 1:
                            raise ValueError(f"model.embed returns {sorted(emb)}; expected one speech embedding "
                                             f"for a model whose embed_text returns a tensor")
                        emb = {"shared": next(iter(emb.values()))}
                    for g, v in emb.items():
                        check_finite(v, batch["utt_ids"], f"the {g} embedding", "best_of_n candidates")
                        groups.setdefault(g, []).append(F.normalize(v.float(), dim=-1).cpu())
                    out_ids.extend(batch["utt_ids"])
        return out_ids, {g: torch.cat(v) for g, v in groups.items()}

    def embed_prompt(self, prompt: Prompt) -> Dict[str, torch.Tensor]:
        """``{group: (D_g,)}`` L2-normalised prompt embeddings (see the module docstring)."""
        if isinstance(prompt, str):
            if not prompt.strip():
                raise ValueError("empty prompt")
            with torch.no_grad():
                t = self.model.embed_text([prompt])
            if torch.is_tensor(t):
                return {"shared": F.normalize(t.float(), dim=-1)[0].cpu()}
            return {g: F.normalize(v.float(), dim=-1)[0].cpu() for g, v in t.items()}
        if not prompt:
            raise ValueError("empty per-group prompt mapping")
        out = {}
        for g, text in prompt.items():
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"prompt of group {g!r} is empty")
            with torch.no_grad():
                t = self.model.embed_text([text])
            if torch.is_tensor(t):
                raise ValueError(f"per-group prompts need a model with text subspaces (ParaMETA); this exp's "
                                 f"text tower gives one embedding (give one prompt string)")
            if g not in t:
                raise ValueError(f"prompt group {g!r} is not a text subspace of the exp; subspaces: {sorted(t)}")
            out[g] = F.normalize(t[g].float(), dim=-1)[0].cpu()
        return out

    def score(self, prompt: Prompt, candidates: Sequence[Tuple[str, CandidateAudio]],
              sample_rate: Optional[int] = None) -> List[CandidateScore]:
        """Candidates ranked best first (ties by id)."""
        text = self.embed_prompt(prompt)
        ids, speech = self.embed_candidates(candidates, sample_rate)
        keys = sorted(g for g in text if g in speech)
        if not keys:
            raise ValueError(f"no group in common between the speech embeddings {sorted(speech)} and the "
                             f"prompt {sorted(text)}")
        per = {g: (speech[g] @ text[g]).tolist() for g in keys}
        rows = [(cid, float(np.mean([per[g][i] for g in keys])), {g: float(per[g][i]) for g in keys})
                for i, cid in enumerate(ids)]
        rows.sort(key=lambda r: (-r[1], r[0]))
        return [CandidateScore(cid, s, r, groups) for r, (cid, s, groups) in enumerate(rows, 1)]


def score_candidates(exp, prompt: Prompt, candidates: Sequence[Tuple[str, CandidateAudio]],
                     sample_rate: Optional[int] = None, checkpoint: Optional[str] = None,
                     feats_conf: Optional[str] = None, device: str = "cpu") -> List[CandidateScore]:
    """Rank ``candidates`` (``[(id, wav path | wav.scp entry | waveform (S,))]``; waveforms at
    ``sample_rate``) against ``prompt`` (text, or ``{group: text}`` for ParaMETA) with the exp
    ``exp``; returns :class:`CandidateScore` best first."""
    return BestOfN(exp, checkpoint, feats_conf, device).score(prompt, candidates, sample_rate)


def rank_candidates(exp, prompt: str, candidates, checkpoint=None, feats_conf=None,
                    device="cpu") -> List[Tuple[str, float]]:
    """``[(candidate id, cosine)]`` sorted best first, candidates a ``.wav`` directory or a wav.scp."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("empty --prompt")
    ranked = score_candidates(exp, prompt, sorted(read_candidates(candidates).items()), checkpoint=checkpoint,
                              feats_conf=feats_conf, device=device)
    return [(c.id, c.score) for c in ranked]


__all__ = ["BestOfN", "CandidateScore", "read_candidates", "rank_candidates", "score_candidates",
           "on_the_fly_config"]
