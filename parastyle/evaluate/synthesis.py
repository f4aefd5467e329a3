"""Synthesis with the style-conditioned acoustic model: style vectors from prompts, texts or whole
data dirs -> log-mel -> vocoder -> a synthesis dir (a Kaldi data dir read by ``eval_tts``).

Style vectors (:class:`StyleEncoder`, from a style exp dir):

- ParaMETA exp, ``mode: subspaces`` (default): the concatenation over the model's factors (in its
  order) of ``LayerNorm(subspace)`` (no affine; the LayerNorm the model applies before its
  prototypes). A speech prompt gives the speech subspaces, a text prompt the text subspaces, and
  a manipulated prompt replaces one factor's slice by the target class prototype after the same
  LayerNorm (LayerNorm is scale-invariant, so this equals ``LayerNorm(model.manipulate(...))``);
  the other slices are untouched. ``mode: meta``: the 768-d META embedding (speech prompts only).
- CLAP exp: the L2-normalised speech (speech prompt) or caption (text prompt) embedding.
- no style exp: the TTS model holds a speaker table (``style.type: speaker``); the prompt is a
  training speaker id.

Synthesis dir (``exp/<tts>/synth_<name>/``), written under a temporary name and renamed at the end:
``wav.scp`` (22,050 Hz wavs in ``wavs/``), ``utt2spk``, ``spk2utt``, ``text``, ``utt2<factor>`` (the
TARGET label per factor, when known), ``utt2prompt`` (``speech <ref>``, ``text <caption>``,
``manipulated <ref> <factor>=<label>``, ``speaker <spk>``), ``utt2ref``, ``utt2group`` (candidates
``<group>-c<k>``), ``style.scp`` + ``style.ark``, ``synth_conf.yaml``.

Sampling: each output utterance draws its noise from its own generator seeded by
``(seed, utterance id)``, so a result does not depend on batching or order.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from parastyle.fileio import DataError, atomic_write, read_kv, write_kv

logger = logging.getLogger(__name__)

PROMPT_TYPES = ("speech", "text", "manipulated", "speaker")
ANY_OTHER = "*"          # --manipulate <factor>=* : every utterance to another class (the next one, cyclically)


def _device(device: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def _model_name(exp: Path) -> str:
    from parastyle.train.config import read_saved_config
    p = exp / "config.yaml"
    if not p.is_file():
        raise DataError(f"{exp}: not an exp dir ({p} not found)")
    return read_saved_config(p)["model"]["name"]


# ---------------------------------------------------------------------------- style vectors
class StyleEncoder:
    """Style vectors from a ParaMETA or CLAP exp dir (see the module docstring)."""

    KINDS = {"parameta": "parameta", "clap": "clap"}

    def __init__(self, exp, mode: str = "subspaces", device: str = "cpu", checkpoint: Optional[str] = None):
        from parastyle.train.checkpoint import load_model_from_exp
        self.exp = Path(exp)
        name = _model_name(self.exp)
        if name not in self.KINDS:
            raise DataError(f"{self.exp}: an exp of model {name!r}; a style exp must be a ParaMETA ('parameta') "
                            f"or CLAP ('clap') exp")
        self.kind = name
        if mode not in ("subspaces", "meta"):
            raise DataError(f"style mode must be subspaces or meta, got {mode!r}")
        if mode == "meta" and name != "parameta":
            raise DataError(f"{self.exp}: style mode 'meta' needs a ParaMETA exp, this is {name!r}")
        self.mode = mode if name == "parameta" else "clap"
        self.device = _device(device)
        self.model, self.config, self.task = load_model_from_exp(self.exp, checkpoint, map_location=self.device)
        self.model.to(self.device).eval()
        self.factors = list(getattr(self.model, "factors", []))
        self.labels = {f: list(v) for f, v in (self.task.factors or {}).items()}

    def _compose(self, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if self.kind == "clap":
            v = parts if torch.is_tensor(parts) else next(iter(parts.values()))
            return F.normalize(v.float(), dim=-1)
        if self.mode == "meta":
            return parts["meta"].float()
        return torch.cat([F.layer_norm(parts[f].float(), parts[f].shape[-1:]) for f in self.factors], dim=-1)

    @property
    def slices(self) -> Dict[str, Tuple[int, int]]:
        """``{factor: (start, end)}`` of each subspace in a ``subspaces`` style vector."""
        if self.kind != "parameta" or self.mode != "subspaces":
            return {}
        out, start = {}, 0
        for f in self.factors:
            d = self.model.subspace_proj[f].out_features
            out[f] = (start, start + d)
            start += d
        return out

    def _speech_parts(self, wavs: Mapping[str, str]) -> Dict[str, Dict[str, torch.Tensor]]:
        from parastyle.data.collate import move_batch
        from parastyle.evaluate.best_of_n import on_the_fly_config
        from parastyle.train.build import build_dataloader
        config = on_the_fly_config(self.config)
        out: Dict[str, Dict[str, torch.Tensor]] = {}
        with tempfile.TemporaryDirectory(prefix="style.") as tmp:
            write_kv(Path(tmp) / "wav.scp", dict(wavs))
            write_kv(Path(tmp) / "utt2spk", {k: k for k in wavs})
            loader = build_dataloader(config, tmp, task=self.task, train=False)
            with torch.no_grad():
                for batch in loader:
                    batch = move_batch(batch, self.device)
                    emb = self.model.embed(batch)
                    if torch.is_tensor(emb):
                        emb = {"speech": emb}
                    for i, u in enumerate(batch["utt_ids"]):
                        out[u] = {k: v[i:i + 1].cpu() for k, v in emb.items()}
        return out

    def from_speech(self, wavs: Mapping[str, str]) -> Dict[str, torch.Tensor]:
        """``{id: wav entry}`` -> ``{id: (S,)}``; an unreadable wav is a DataError naming it."""
        return {u: self._compose(p)[0] for u, p in self._speech_parts(wavs).items()}

    def from_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Style descriptions -> ``(N, S)``."""
        texts = list(texts)
        if not texts or any(not t.strip() for t in texts):
            raise DataError("empty style text")
        if self.mode == "meta":
            raise DataError(f"{self.exp}: style mode 'meta' has no text prompt (text maps to the subspaces only); "
                            f"use mode subspaces")
        with torch.no_grad():
            parts = self.model.embed_text(texts)
        if torch.is_tensor(parts):
            return self._compose(parts).cpu()
        return self._compose({k: v.cpu() for k, v in parts.items()})

    def manipulate(self, style: torch.Tensor, factor: str, label: str) -> torch.Tensor:
        """Replace the ``factor`` slice of subspace style vectors ``(B, S)`` by LayerNorm(prototype of ``label``)."""
        if self.kind != "parameta" or self.mode != "subspaces":
            raise DataError(f"{self.exp}: manipulation needs a ParaMETA exp and style mode subspaces "
                            f"(this is {self.kind}, mode {self.mode})")
        if factor not in self.slices:
            raise DataError(f"unknown factor {factor!r} to manipulate; the style model has {self.factors}")
        if label not in self.labels.get(factor, []):
            raise DataError(f"unknown {factor} class {label!r}; classes: {self.labels.get(factor)}")
        c = self.labels[factor].index(label)
        if not bool(self.model.prototypes.seen(factor)[c]):
            raise DataError(f"{factor} class {label!r} has no prototype in {self.exp} (never seen in training)")
        proto = self.model.prototypes.prototypes(factor)[c].float().cpu()
        s, e = self.slices[factor]
        out = style.clone().float()
        out[:, s:e] = F.layer_norm(proto, proto.shape)[None, :]
        return out

    @property
    def identity(self) -> Dict[str, Any]:
        return {"exp": str(self.exp.resolve()), "kind": self.kind, "mode": self.mode}


def write_style_vectors(encoder: StyleEncoder, data_dir, dump_dir) -> int:
    """Speech-prompt style vector of every utterance of ``data_dir`` (its own recording) into
    ``<dump>/style.ark``; ``<data>/style_conf.yaml`` and, last, ``<data>/style.scp``."""
    import kaldiio
    d, dump = Path(data_dir), Path(dump_dir)
    wavs = read_kv(d / "wav.scp")
    utts = list(read_kv(d / "utt2spk"))
    missing = [u for u in utts if u not in wavs]
    if missing:
        raise DataError(f"{d}/wav.scp: {len(missing)} utterance(s) of utt2spk have no recording (segments are not "
                        f"supported here), e.g. {missing[:3]}")
    if (d / "style.scp").exists():
        (d / "style.scp").unlink()
    vecs = encoder.from_speech({u: wavs[u] for u in utts})
    dump.mkdir(parents=True, exist_ok=True)
    ark = dump / "style.ark"
    tmp_scp = dump / "style.tmp.scp"
    with kaldiio.WriteHelper(f"ark,scp:{ark},{tmp_scp}") as w:
        for u in utts:
            w(u, vecs[u].numpy().astype(np.float32)[None, :])
    table = read_kv(tmp_scp)
    tmp_scp.unlink()
    with atomic_write(d / "style_conf.yaml") as f:
        yaml.safe_dump({**encoder.identity, "dim": int(next(iter(vecs.values())).numel())}, f, sort_keys=False)
    write_kv(d / "style.scp", table)
    return len(table)


# ---------------------------------------------------------------------------- requests
@dataclass
class Request:
    """One utterance to synthesise."""

    utt: str
    text: str
    lang: str
    speaker: str
    prompt: str                                   # utt2prompt value
    style: Optional[torch.Tensor] = None          # (S,) or None (speaker-table model)
    style_speaker: Optional[str] = None
    targets: Dict[str, str] = field(default_factory=dict)
    ref: Optional[str] = None
    group: Optional[str] = None
    durations: Optional[torch.Tensor] = None      # copy synthesis
    reference: Optional[torch.Tensor] = None      # (T, n_mels) log-mel of the prompt recording (reference_encoder models)


def parse_manipulation(spec: str) -> Tuple[str, str]:
    if not spec or spec.count("=") != 1 or not all(spec.split("=")):
        raise DataError(f"--manipulate expects <factor>=<label> (or <factor>={ANY_OTHER}), got {spec!r}")
    f, lab = spec.split("=")
    return f.strip(), lab.strip()


class Synthesizer:
    """A trained ``fastspeech_style`` exp + a vocoder (``load_vocoder`` seam) + an optional style encoder."""

    def __init__(self, tts_exp, vocoder: str = "griffin_lim", style_exp=None, style_mode: Optional[str] = None,
                 device: str = "cpu", checkpoint: Optional[str] = None):
        from parastyle.models.vocoder import load_vocoder
        from parastyle.text.phonemes import PhoneVocab
        from parastyle.train.checkpoint import load_model_from_exp
        self.exp = Path(tts_exp)
        name = _model_name(self.exp)
        if name != "fastspeech_style":
            raise DataError(f"{self.exp}: an exp of model {name!r}, not a TTS acoustic model ('fastspeech_style')")
        self.device = _device(device)
        self.model, self.config, self.task = load_model_from_exp(self.exp, checkpoint, map_location=self.device)
        self.model.to(self.device).eval()
        self.vocab = PhoneVocab.read(Path(self.task.lang_dir) / "phones.txt")
        from parastyle.data.tts_dataset import tts_config
        tc = tts_config(self.config["data"])
        self.add_blank = tc["add_blank"]
        self.style_conf = tc["style"]
        self.frontend_conf = self._frontend_conf()
        self.vocoder = load_vocoder(vocoder, device=self.device, frontend=self.frontend_conf)
        self.vocoder_spec = vocoder
        self.style = None
        if self.model.style_type == "vector":
            style_exp = style_exp or self.style_conf.get("exp")
            if not style_exp:
                raise DataError(f"{self.exp} is conditioned on style vectors: give a style exp (ParaMETA or CLAP)")
            mode = style_mode or self.style_conf.get("mode") or "subspaces"
            trained = self.style_conf.get("exp")
            if trained and Path(trained).resolve() != Path(style_exp).resolve():
                raise DataError(f"{self.exp} was trained on style vectors of {trained}, not {style_exp}")
            if self.style_conf.get("mode") and mode != self.style_conf["mode"]:
                raise DataError(f"{self.exp} was trained on style mode {self.style_conf['mode']!r}, not {mode!r}")
            self.style = StyleEncoder(style_exp, mode=mode, device=self.device)
            probe = self.style.from_text(["a person is speaking"]) if self.style.mode != "meta" else None
            dim = probe.shape[1] if probe is not None else self.model.style_dim
            if dim != self.model.style_dim:
                raise DataError(f"{style_exp} gives {dim}-d style vectors; {self.exp} expects {self.model.style_dim}")
        elif style_exp:
            raise DataError(f"{self.exp} is conditioned on a speaker table, not style vectors: drop the style exp")

    def _frontend_conf(self) -> Dict[str, Any]:
        train = (self.config.get("_run") or {}).get("train_data")
        p = Path(train) / "feats_conf.yaml" if train else None
        if p is None or not p.is_file():
            raise DataError(f"{self.exp}: the front-end of the training features is not recorded "
                            f"({p} not found)")
        with open(p, encoding="utf-8") as f:
            return yaml.safe_load(f)

    # -------------------------------------------------------------- building requests
    def phone_ids(self, text: str, lang: str, utt: str) -> List[int]:
        from parastyle.text.phonemes import phonemize
        seq = phonemize([text], [lang], [utt], tag_language=any(s.startswith("<") and s not in ("<pad>", "<blank>")
                                                                for s in self.vocab.symbols))[0]
        return self.vocab.encode(seq, utt=utt, add_blank=self.add_blank)

    def requests_for_text(self, text: str, lang: str, utt: str = "synth", style_wav: Optional[str] = None,
                          style_text: Optional[str] = None, manipulate: Optional[str] = None,
                          speaker: Optional[str] = None) -> List[Request]:
        given = [x is not None for x in (style_wav, style_text, speaker)]
        if sum(given) != 1:
            raise DataError("give exactly one style prompt: --style_wav, --style_text or --speaker")
        req = Request(utt=utt, text=text, lang=lang, speaker=utt, prompt="")
        if speaker is not None:
            if self.model.style_type != "speaker":
                raise DataError(f"{self.exp} is conditioned on style vectors: give --style_wav or --style_text")
            req.style_speaker, req.prompt, req.targets = speaker, f"speaker {speaker}", {}
            return [req]
        if self.style is None:
            raise DataError(f"{self.exp} is conditioned on a speaker table: give --speaker")
        if style_wav is not None:
            if not Path(style_wav).is_file():
                raise DataError(f"--style_wav {style_wav}: file not found")
            req.style = self.style.from_speech({utt: str(Path(style_wav).resolve())})[utt]
            req.prompt = f"speech {Path(style_wav).name}"
            if not manipulate:
                req.reference = self.reference_mels({utt: str(Path(style_wav).resolve())}, "--style_wav").get(utt)
        else:
            req.style = self.style.from_text([style_text])[0]
            req.prompt = f"text {style_text}"
        if manipulate:
            factor, label = parse_manipulation(manipulate)
            if label == ANY_OTHER:
                raise DataError(f"--manipulate {factor}={ANY_OTHER} needs a data dir (one target per utterance)")
            req.style = self.style.manipulate(req.style[None], factor, label)[0]
            req.prompt = f"manipulated {req.prompt.split(' ', 1)[1]} {factor}={label}"
            req.targets = {factor: label}
        return [req]

    def requests_for_data(self, data_dir, prompt: str = "speech", manipulate: Optional[str] = None,
                          copy_synthesis: bool = False, utts: Optional[Sequence[str]] = None) -> List[Request]:
        """One request per utterance of ``data_dir``: its text and language, the style of its own recording
        (``speech``), of its caption (``text``), of its recording with one factor replaced (``manipulated``),
        or its speaker (``speaker``). Targets = its labels (with the manipulated factor replaced)."""
        from parastyle.data.datadir import factor_file_names
        d = Path(data_dir)
        if prompt not in PROMPT_TYPES:
            raise DataError(f"prompt type must be one of {PROMPT_TYPES}, got {prompt!r}")
        if (prompt == "manipulated") != bool(manipulate):
            raise DataError("--manipulate goes with prompt type 'manipulated' (and only with it)")
        text = read_kv(d / "text")
        utt2spk = read_kv(d / "utt2spk")
        langs = read_kv(d / "utt2language") if (d / "utt2language").is_file() else {}
        labels = {n[len("utt2"):]: read_kv(d / n) for n in factor_file_names(d)}
        utts = list(utts) if utts is not None else list(utt2spk)
        for u in utts:
            if u not in text:
                raise DataError(f"{d}/text: utterance {u!r} has no text")
            if u not in langs:
                raise DataError(f"{d}/utt2language: utterance {u!r} has no language (needed for its phonemes)")
        reqs = [Request(utt=u, text=text[u], lang=langs[u], speaker=utt2spk[u], prompt="", ref=u,
                        targets={f: tab[u] for f, tab in labels.items() if u in tab}) for u in utts]
        if prompt == "speaker":
            if self.model.style_type != "speaker":
                raise DataError(f"{self.exp} is conditioned on style vectors: prompt type speaker does not apply")
            for r in reqs:
                r.style_speaker, r.prompt = r.speaker, f"speaker {r.speaker}"
        else:
            if self.style is None:
                raise DataError(f"{self.exp} is conditioned on a speaker table: use prompt type speaker")
            if prompt == "text":
                caps = read_kv(d / "utt2caption")
                missing = [u for u in utts if u not in caps]
                if missing:
                    raise DataError(f"{d}/utt2caption: {len(missing)} utterance(s) have no caption, e.g. {missing[:3]}")
                vecs = self.style.from_text([caps[u] for u in utts])
                for r, v in zip(reqs, vecs):
                    r.style, r.prompt = v, f"text {caps[r.utt]}"
            else:
                wavs = read_kv(d / "wav.scp")
                missing = [u for u in utts if u not in wavs]
                if missing:
                    raise DataError(f"{d}/wav.scp: {len(missing)} utterance(s) have no recording, e.g. {missing[:3]}")
                vecs = self.style.from_speech({u: wavs[u] for u in utts})
                refs = self.reference_mels({u: wavs[u] for u in utts}, f"{d}/wav.scp") if prompt == "speech" else {}
                for r in reqs:
                    r.style, r.prompt = vecs[r.utt], f"speech {r.utt}"
                    r.reference = refs.get(r.utt)
            if prompt == "manipulated":
                factor, label = parse_manipulation(manipulate)
                vocab = self.style.labels.get(factor)
                if vocab is None:
                    raise DataError(f"unknown factor {factor!r} to manipulate; the style model has {self.style.factors}")
                for r in reqs:
                    if label == ANY_OTHER:
                        own = r.targets.get(factor)
                        if own is None:
                            raise DataError(f"{d}/utt2{factor}: utterance {r.utt!r} has no {factor} label, so "
                                            f"'{factor}={ANY_OTHER}' has no 'other' class")
                        target = vocab[(vocab.index(own) + 1) % len(vocab)]
                    else:
                        target = label
                    r.style = self.style.manipulate(r.style[None], factor, target)[0]
                    r.prompt = f"manipulated {r.utt} {factor}={target}"
                    r.targets = {**r.targets, factor: target}
        if copy_synthesis:
            self._reference_durations(d, reqs)
        return reqs

    def reference_mels(self, wavs: Mapping[str, str], where: str) -> Dict[str, torch.Tensor]:
        """Log-mel ``(T, n_mels)`` of each prompt recording with the training front-end, for a model with a
        reference encoder (its utterance latent); ``{}`` for a model without one. Manipulated and text prompts
        get none: the model's prior supplies their latent."""
        if getattr(self.model, "ref_encoder", None) is None:
            return {}
        from parastyle.features.extract import extract_one
        from parastyle.features.frontend import build_frontend
        fe = build_frontend(dict(self.frontend_conf))
        return {u: torch.from_numpy(extract_one(fe, (u, w, where, None)).copy()) for u, w in wavs.items()}

    def _reference_durations(self, d: Path, reqs: List[Request]) -> None:
        import kaldiio
        feats = read_kv(d / "feats.scp")
        for r in reqs:
            if r.utt not in feats:
                raise DataError(f"{d}/feats.scp: utterance {r.utt!r} missing (copy synthesis aligns the reference mel)")
            mel = torch.from_numpy(kaldiio.load_mat(feats[r.utt]).copy()).float()
            ids = torch.tensor([self.phone_ids(r.text, r.lang, r.utt)])
            batch = {"utt_ids": [r.utt], "phones": ids.to(self.device), "phone_lens": torch.tensor([ids.shape[1]]).to(self.device),
                     "feats": mel[None].to(self.device), "mask": torch.ones(1, mel.shape[0], dtype=torch.bool, device=self.device),
                     "speakers": [r.style_speaker or r.speaker]}
            if r.style is not None:
                batch["style"] = r.style[None].to(self.device)
            r.durations = self.model.align(batch)[0].cpu()

    @staticmethod
    def with_candidates(reqs: List[Request], n: int) -> List[Request]:
        if n <= 1:
            return reqs
        out = []
        for r in reqs:
            for k in range(n):
                c = Request(**{**r.__dict__, "utt": f"{r.utt}-c{k}", "group": r.utt})
                out.append(c)
        return out

    # -------------------------------------------------------------- synthesis
    def synthesize(self, req: Request, seed: int, temperature_duration: float, temperature_pitch: float,
                   length_scale: float = 1.0, reference_weight: Optional[float] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """-> ``(wav (S,), mel (T, n_mels))`` of one request; deterministic for ``(seed, req.utt)``."""
        gen = torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(f"{seed}:{req.utt}".encode()).digest()[:7], "big"))
        ids = torch.tensor([self.phone_ids(req.text, req.lang, req.utt)], device=self.device)
        lens = torch.tensor([ids.shape[1]], device=self.device)
        style = req.style[None].to(self.device) if req.style is not None else None
        speakers = [req.style_speaker] if req.style_speaker is not None else None
        dur = req.durations[None].to(self.device) if req.durations is not None else None
        ref = req.reference[None].to(self.device) if req.reference is not None else None
        out = self.model.infer(ids, lens, style=style, speakers=speakers, temperature_duration=temperature_duration,
                               temperature_pitch=temperature_pitch, length_scale=length_scale, generator=gen,
                               durations=dur, reference=ref,
                               reference_weight=reference_weight if ref is not None else None)
        wav = self.vocoder(out["mel"], out["mel_lens"])[0]
        return wav.cpu(), out["mel"][0, : int(out["mel_lens"][0])].cpu()

    def run(self, reqs: List[Request], out_dir, seed: int = 0, temperature_duration: float = 0.0,
            temperature_pitch: float = 0.0, length_scale: float = 1.0, progress: bool = True,
            extra_conf: Optional[Mapping[str, Any]] = None, reference_weight: Optional[float] = None) -> Dict[str, Any]:
        """Synthesise every request into the synthesis dir ``out_dir`` (temporary dir renamed at the end);
        returns the summary (RTF, seconds, counts) also written to ``synth_conf.yaml``. ``reference_weight``
        (models with a reference encoder; None = the model's ``reference_encoder.weight``): see
        :meth:`FastSpeechStyle.infer`."""
        import kaldiio
        import soundfile as sf
        from tqdm import tqdm
        out = Path(out_dir)
        if not reqs:
            raise DataError("nothing to synthesise")
        ids = [r.utt for r in reqs]
        if len(set(ids)) != len(ids):
            raise DataError("duplicate output utterance ids")
        tmp = out.parent / f".{out.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "wavs").mkdir(parents=True)
        sr = int(self.vocoder.sample_rate)
        compute_s, audio_s = 0.0, 0.0
        tables: Dict[str, Dict[str, str]] = {k: {} for k in ("wav.scp", "utt2spk", "text", "utt2prompt", "utt2ref",
                                                              "utt2group", "utt2language")}
        factors: Dict[str, Dict[str, str]] = {}
        styles: Dict[str, np.ndarray] = {}
        for r in tqdm(reqs, disable=not progress, desc="synthesize", dynamic_ncols=True):
            t0 = time.perf_counter()
            wav, _ = self.synthesize(r, seed, temperature_duration, temperature_pitch, length_scale, reference_weight)
            compute_s += time.perf_counter() - t0
            audio_s += wav.numel() / sr
            sf.write(str(tmp / "wavs" / f"{r.utt}.wav"), wav.clamp(-1, 1).numpy(), sr, subtype="PCM_16")
            tables["wav.scp"][r.utt] = str((out / "wavs" / f"{r.utt}.wav").resolve())
            tables["utt2spk"][r.utt] = r.speaker
            tables["text"][r.utt] = r.text
            tables["utt2language"][r.utt] = r.targets.get("language", r.lang)
            tables["utt2prompt"][r.utt] = r.prompt
            if r.ref:
                tables["utt2ref"][r.utt] = r.ref
            if r.group:
                tables["utt2group"][r.utt] = r.group
            for f, lab in r.targets.items():
                if f != "language":      # utt2language above: the target (manipulated) or spoken language
                    factors.setdefault(f"utt2{f}", {})[r.utt] = lab
            if r.style is not None:
                styles[r.utt] = r.style.numpy().astype(np.float32)[None, :]
        for name, table in {**tables, **factors}.items():
            if table:
                write_kv(tmp / name, table)
        from parastyle.data.datadir import spk2utt_from_utt2spk
        write_kv(tmp / "spk2utt", {s: " ".join(u) for s, u in spk2utt_from_utt2spk(tables["utt2spk"]).items()})
        if styles:
            kaldiio.save_ark(str(tmp / "style.ark"), styles, scp=str(tmp / "style.scp"))
            fixed = {k: v.replace(str(tmp / "style.ark"), str((out / "style.ark").resolve()))
                     for k, v in read_kv(tmp / "style.scp").items()}
            write_kv(tmp / "style.scp", fixed)
        summary = {"tts_exp": str(self.exp.resolve()), "vocoder": self.vocoder_spec, "seed": int(seed),
                   "style": self.style.identity if self.style else {"kind": "speaker"},
                   "temperature_duration": float(temperature_duration), "temperature_pitch": float(temperature_pitch),
                   "length_scale": float(length_scale), "num_utts": len(reqs),
                   "reference_weight": (None if getattr(self.model, "ref_encoder", None) is None else
                                        float(self.model.reference_weight if reference_weight is None else reference_weight)),
                   "references": sum(r.reference is not None for r in reqs), "audio_s": round(audio_s, 3),
                   "compute_s": round(compute_s, 3), "rtf": round(compute_s / max(audio_s, 1e-9), 4),
                   "device": self.device, "sample_rate": sr, **dict(extra_conf or {})}
        with atomic_write(tmp / "synth_conf.yaml") as f:
            yaml.safe_dump(summary, f, sort_keys=False, allow_unicode=True)
        if out.exists():
            old = out.parent / f".{out.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
        return summary
