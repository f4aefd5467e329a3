"""Objective evaluation of generated speech with independent judges (``parastyle.bin.eval_tts``).

Input: a synthesis dir written by :mod:`parastyle.evaluate.synthesis` (``wav.scp``, ``utt2spk``,
``text``, ``utt2<factor>`` = target labels, ``utt2prompt``, ``utt2ref``, ``utt2group``,
``synth_conf.yaml``) and the ground-truth test data dir it was made from (``--ref_data``).

Judges (never the models that made the speech, never trained on generated audio; checked and
recorded in ``results.json["judges"]``):

* style judge: a ``multitask_ce`` exp trained on ground-truth recordings. Accuracy per factor of its
  predictions against the target labels, per prompt type, next to its accuracy on the ground-truth
  test audio (the ceiling row) and chance (1 / classes);
* ASR judge: a ``ctc_asr`` exp (:mod:`parastyle.evaluate.asr`); CER/WER of the generated speech
  against the text it should say, next to its CER/WER on the reference recordings of the same texts;
* speaker encoder: resemblyzer (weights inside its PyPI package); SECS generated vs prompt recording
  (speech and manipulated prompts) and, as the reference level, prompt vs another recording of the
  same speaker.

Also: manipulation success / preservation per factor (next to the paper's 100 / 90 / 70 / 55 %),
F0 mean / range per target emotion and age class vs the same statistics of the ground truth
(Praat's tracker), MCD of copy synthesis (``synth_conf.copy_synthesis``: ground-truth durations;
frames aligned one to one), a PNG of mel + F0 of a few manipulated examples next to their
references, and best-of-N (:func:`evaluate_best_of_n`): N candidates per prompt ranked by a CLAP and
a ParaMETA exp (:class:`parastyle.evaluate.best_of_n.BestOfN`), judge accuracy of the chosen vs a
random vs the worst candidate, CER of chosen vs random.

Metric definitions: :mod:`parastyle.metrics.tts`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
import yaml

from parastyle.evaluate.asr import ASRJudge, ExpOnWavs, check_sample_rates
from parastyle.fileio import DataError, atomic_write, read_kv
from parastyle.metrics import tts as M
from parastyle.metrics.asr import cer, edit_errors, wer

logger = logging.getLogger(__name__)

#: ParaMETA paper: classification accuracy of manipulated speech per factor
PAPER_MANIPULATION = {"gender": 1.00, "emotion": 0.90, "age": 0.70, "language": 0.55}
PROMPT_TYPES = ("speech", "text", "manipulated", "speaker")


# ---------------------------------------------------------------------------- synthesis dir
class SynthDir:
    """The tables of a synthesis dir, checked: every wav exists and is at ``sample_rate`` Hz."""

    def __init__(self, path, sample_rate: int = 22050):
        self.path = Path(path)
        d = self.path
        if not d.is_dir():
            raise DataError(f"{d}: synthesis dir not found (run the synthesis stage)")
        for name in ("wav.scp", "utt2spk", "text", "utt2prompt"):
            if not (d / name).is_file():
                raise DataError(f"{d}/{name}: file not found (not a complete synthesis dir; rerun the synthesis stage)")
        self.wav_scp = read_kv(d / "wav.scp")
        self.utts = sorted(read_kv(d / "utt2spk"))
        missing = [u for u in self.utts if u not in self.wav_scp]
        if missing:
            raise DataError(f"{d}/wav.scp: {len(missing)} utterance(s) of utt2spk have no wav, e.g. {missing[:3]}")
        for u in self.utts:
            entry = self.wav_scp[u]
            if not entry.strip().endswith("|") and not Path(entry).is_file():
                raise DataError(f"{d}/wav.scp: utterance {u!r}: synthesized file {entry} not found")
        check_sample_rates({u: self.wav_scp[u] for u in self.utts}, sample_rate, f"synthesis dir {d}")
        self.sample_rate = sample_rate
        self.text = read_kv(d / "text", allow_empty_value=True)
        self.prompt = read_kv(d / "utt2prompt")
        for n, u in enumerate(self.utts, 1):
            if u not in self.prompt:
                raise DataError(f"{d}/utt2prompt: utterance {u!r} has no prompt")
            kind = self.prompt[u].split()[0]
            if kind not in PROMPT_TYPES:
                raise DataError(f"{d}/utt2prompt: utterance {u!r}: prompt type {kind!r} is not one of {PROMPT_TYPES}")
        self.ref = read_kv(d / "utt2ref") if (d / "utt2ref").is_file() else {}
        self.group = read_kv(d / "utt2group") if (d / "utt2group").is_file() else {}
        self.targets: Dict[str, Dict[str, str]] = {}
        for p in sorted(d.glob("utt2*")):
            f = p.name[len("utt2"):]
            if f in ("spk", "prompt", "ref", "group", "dur", "num_frames", "caption", "tags", "phones"):
                continue
            self.targets[f] = read_kv(p)
        conf = d / "synth_conf.yaml"
        self.conf: Dict[str, Any] = {}
        if conf.is_file():
            with open(conf, encoding="utf-8") as fh:
                self.conf = yaml.safe_load(fh) or {}

    def prompt_type(self, utt: str) -> str:
        return self.prompt[utt].split()[0]

    def prompt_ref(self, utt: str) -> Optional[str]:
        """The reference recording of a speech / manipulated prompt."""
        parts = self.prompt[utt].split()
        return parts[1] if parts[0] in ("speech", "manipulated") and len(parts) > 1 else None

    def manipulated_factor(self, utt: str) -> Optional[str]:
        parts = self.prompt[utt].split()
        if parts[0] != "manipulated":
            return None
        if len(parts) < 3 or "=" not in parts[2]:
            raise DataError(f"{self.path}/utt2prompt: utterance {utt!r}: expected 'manipulated <ref> <factor>=<label>', "
                            f"got {self.prompt[utt]!r}")
        return parts[2].split("=", 1)[0]


class RefData:
    """The ground-truth data dir: wavs, labels, text, speakers."""

    def __init__(self, path):
        self.path = Path(path)
        d = self.path
        for name in ("wav.scp", "utt2spk"):
            if not (d / name).is_file():
                raise DataError(f"{d}/{name}: file not found (--ref_data must be the ground-truth test data dir)")
        self.wav_scp = read_kv(d / "wav.scp")
        self.utt2spk = read_kv(d / "utt2spk")
        self.text = read_kv(d / "text", allow_empty_value=True) if (d / "text").is_file() else {}
        self.labels = {p.name[len("utt2"):]: read_kv(p) for p in sorted(d.glob("utt2*"))
                       if p.name[len("utt2"):] not in ("spk", "dur", "num_frames", "caption", "tags", "phones",
                                                       "prompt", "ref", "group")}

    def wav(self, utt: str, where: str) -> str:
        if utt not in self.wav_scp:
            raise DataError(f"{where}: reference utterance {utt!r} is not in {self.path}/wav.scp")
        return self.wav_scp[utt]


# ---------------------------------------------------------------------------- judges
class StyleJudge(ExpOnWavs):
    """A ``multitask_ce`` exp: ``predict(table) -> {factor: {utt: label}}``."""

    model_name = "multitask_ce"
    role = "style judge"

    def predict(self, table: Mapping[str, str]) -> Dict[str, Dict[str, str]]:
        out: Dict[str, Dict[str, str]] = {f: {} for f in self.task.factors}
        for batch in self._batches(dict(table)):
            pred = self.model.predict(batch)
            for f, vocab in self.task.factors.items():
                for u, k in zip(batch["utt_ids"], pred[f].cpu().tolist()):
                    out[f][u] = vocab[int(k)]
        return out


def check_independence(judge_exp, role: str, synth: SynthDir, train_data: Optional[str]) -> None:
    """Refuse a judge that made the speech or was trained on generated audio."""
    j = Path(judge_exp).resolve()
    makers = {"tts exp": synth.conf.get("tts_exp"), "style exp": (synth.conf.get("style") or {}).get("exp")}
    for what, p in makers.items():
        if p and Path(p).resolve() == j:
            raise DataError(f"{role} {judge_exp} is the {what} that generated {synth.path}: a judge must be independent")
    if train_data:
        td = Path(train_data)
        if td.resolve() == synth.path.resolve() or "synth_" in td.resolve().name:
            raise DataError(f"{role} {judge_exp} was trained on {td}, a synthesis dir: judges train on ground truth")
        scp = td / "wav.scp"
        if scp.is_file():
            root = str(synth.path.resolve())
            bad = [u for u, e in read_kv(scp).items() if root in e]
            if bad:
                raise DataError(f"{role} {judge_exp} was trained on {len(bad)} generated recording(s) of {synth.path}, "
                                f"e.g. {bad[:3]}")


# ---------------------------------------------------------------------------- pieces
def style_accuracy(pred: Mapping[str, Mapping[str, str]], targets: Mapping[str, Mapping[str, str]],
                   utts: Sequence[str]) -> Dict[str, Dict[str, float]]:
    out = {}
    for f in sorted(pred):
        tgt = {u: targets[f][u] for u in utts if f in targets and u in targets[f]}
        acc = M.judge_accuracy(pred[f], tgt)
        if acc is not None:
            out[f] = acc
    return out


def _f0s(table: Mapping[str, str], sample_rate: Optional[int] = None) -> Dict[str, np.ndarray]:
    from parastyle.data.audio import load_audio
    out = {}
    for u, entry in table.items():
        wav = load_audio(u, entry, sample_rate)
        sr = sample_rate
        if sr is None:
            import soundfile as sf
            sr = sf.info(entry).samplerate
        out[u] = M.f0_contour(wav, sr)
    return out


def _asr_scores(hyps: Mapping[str, str], refs: Mapping[str, str],
                groups: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """CER / WER over the transcribed utterances with a reference text; with ``groups`` (utt -> class,
    e.g. the language) also ``by_class``: CER per class, so one language's failures are not hidden in the mean."""
    utts = sorted(u for u in refs if u in hyps)
    if not utts:
        raise DataError("no transcribed utterance has a reference text")
    r, h = [refs[u] for u in utts], [hyps[u] for u in utts]
    out: Dict[str, Any] = {"cer": cer(r, h), "wer": wer(r, h), "n": len(utts)}
    if groups:
        by: Dict[str, List[str]] = {}
        for u in utts:
            if u in groups:
                by.setdefault(groups[u], []).append(u)
        out["by_class"] = {g: {"cer": cer([refs[u] for u in us], [hyps[u] for u in us]), "n": len(us)}
                           for g, us in sorted(by.items())}
    return out


def _plot_manipulated(synth: SynthDir, ref: RefData, utts: Sequence[str], path: Path) -> None:
    """Mel (and F0 on a twin axis) of the reference and the manipulated output, one row per example."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from parastyle.data.audio import load_audio
    from parastyle.features.frontend import build_frontend
    fe = build_frontend({"type": "logmel"})
    fig, axes = plt.subplots(len(utts), 2, figsize=(11, 2.6 * len(utts)), squeeze=False)
    for i, u in enumerate(utts):
        r = synth.prompt_ref(u)
        for j, (name, entry) in enumerate(((f"reference {r}", ref.wav(r, str(synth.path / "utt2prompt"))),
                                           (f"{u}: {synth.prompt[u].split()[-1]}", synth.wav_scp[u]))):
            wav = load_audio(u, entry, fe.sample_rate)
            mel = fe(wav).numpy()
            ax = axes[i][j]
            dur = wav.numel() / fe.sample_rate
            ax.imshow(mel.T, origin="lower", aspect="auto", extent=[0, dur, 0, mel.shape[1]], cmap="magma")
            ax.set_title(name, fontsize=9)
            ax.set_ylabel("mel bin")
            f0 = M.f0_contour(wav, fe.sample_rate)
            t = np.arange(f0.size) * 0.01
            ax2 = ax.twinx()
            ax2.plot(t, np.where(f0 > 0, f0, np.nan), color="cyan", lw=1.2)
            ax2.set_ylim(50, 450)
            ax2.set_ylabel("F0 (Hz)", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name("." + path.name + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)


# ---------------------------------------------------------------------------- main procedure
def evaluate_tts(synth_dir, ref_data, judge, asr_judge=None, speaker_similarity: bool = True, f0: bool = True,
                 plot: bool = True, tag: Optional[str] = None, results_md=None, device: str = "cpu",
                 max_plot: int = 4) -> Dict[str, Any]:
    """Evaluate a synthesis dir; writes ``<synth_dir>/results.json`` (+ ``manipulated.png``) and returns it."""
    style = StyleJudge(judge, device=device)
    synth = SynthDir(synth_dir, style.sample_rate)
    ref = RefData(ref_data)
    check_independence(judge, "style judge", synth, style.train_data)
    asr = None
    if asr_judge is not None:
        asr = ASRJudge(asr_judge, device=device)
        check_independence(asr_judge, "ASR judge", synth, asr.train_data)
    res: Dict[str, Any] = {"method": tag or synth.path.name, "synth_dir": str(synth.path.resolve()),
                           "test_set": ref.path.name, "num_utts": len(synth.utts),
                           "vocoder": synth.conf.get("vocoder"), "tts_exp": synth.conf.get("tts_exp"),
                           "style_exp": (synth.conf.get("style") or {}).get("exp"),
                           "judges": {"style": str(Path(judge).resolve()),
                                      "asr": str(Path(asr_judge).resolve()) if asr_judge else None,
                                      "style_trained_on": style.train_data,
                                      "asr_trained_on": asr.train_data if asr else None}}
    metrics: Dict[str, Any] = {}
    # --- style accuracy: generated (per prompt type) vs ground truth (ceiling)
    pred = style.predict({u: synth.wav_scp[u] for u in synth.utts})
    ref_utts = sorted(ref.wav_scp)
    check_sample_rates(ref.wav_scp, style.sample_rate, f"reference data {ref.path}")
    gt_pred = style.predict(ref.wav_scp)
    ceiling = style_accuracy(gt_pred, ref.labels, ref_utts)
    by_type: Dict[str, List[str]] = {}
    for u in synth.utts:
        by_type.setdefault(synth.prompt_type(u), []).append(u)
    acc: Dict[str, Any] = {"ground_truth": ceiling}
    refs_of_synth = sorted({synth.ref[u] for u in synth.utts if u in synth.ref and synth.ref[u] in ref.wav_scp})
    if refs_of_synth and len(refs_of_synth) < len(ref_utts):
        acc["ground_truth_refs"] = style_accuracy(gt_pred, ref.labels, refs_of_synth)   # the same recordings' GT
    for kind, utts in sorted(by_type.items()):
        a = style_accuracy(pred, synth.targets, utts)
        for f, v in a.items():
            if f in ceiling and ceiling[f]["accuracy"] > 0:
                v["ratio_to_gt"] = v["accuracy"] / ceiling[f]["accuracy"]
            v["chance"] = 1.0 / len(style.task.factors[f])
        acc[kind] = a
    metrics["style_accuracy"] = acc
    # --- manipulation
    manip = {u: synth.manipulated_factor(u) for u in synth.utts if synth.prompt_type(u) == "manipulated"}
    if manip:
        scores = M.manipulation_scores(pred, synth.targets, manip)
        for f, s in scores.items():
            s["paper_accuracy"] = PAPER_MANIPULATION.get(f)
        metrics["manipulation"] = scores
    # --- intelligibility
    if asr is not None:
        hyps = asr.transcribe({u: synth.wav_scp[u] for u in synth.utts})
        gen = _asr_scores(hyps, synth.text, synth.targets.get("language"))
        refs_used = sorted({synth.ref[u] for u in synth.utts if u in synth.ref and synth.ref[u] in ref.wav_scp})
        gt_table = {r: ref.wav_scp[r] for r in refs_used} if refs_used else dict(ref.wav_scp)
        gt_hyps = asr.transcribe(gt_table)
        gt = _asr_scores(gt_hyps, {u: ref.text[u] for u in gt_table if u in ref.text}, ref.labels.get("language"))
        metrics["intelligibility"] = {"by_class_of": "language" if "by_class" in gen else None,
                                      "generated": gen, "ground_truth": gt,
                                      "cer_ratio": gen["cer"] / gt["cer"] if gt["cer"] > 0 else None}
        res["_hyps"] = hyps
    # --- speaker similarity
    with_ref = [u for u in synth.utts if synth.prompt_ref(u)]
    if speaker_similarity and with_ref:
        metrics["speaker_similarity"] = _speaker_similarity(synth, ref, with_ref)
    # --- F0 per target emotion / age class
    if f0:
        gen_f0 = _f0s({u: synth.wav_scp[u] for u in synth.utts}, synth.sample_rate)
        # ground truth over the recordings the synthesis reproduces (utt2ref), else the whole test set
        gt_f0 = _f0s({r: ref.wav_scp[r] for r in refs_of_synth} if refs_of_synth else ref.wav_scp)
        out = {}
        for f in ("emotion", "age"):
            if f in synth.targets and f in ref.labels:
                out[f] = {"generated": M.f0_class_stats(gen_f0, synth.targets[f]),
                          "ground_truth": M.f0_class_stats(gt_f0, ref.labels[f])}
        metrics["f0"] = out
    # --- MCD of copy synthesis
    if synth.conf.get("copy_synthesis"):
        metrics["mcd_copy_synthesis"] = _mcd(synth, ref)
    res["metrics"] = metrics
    hyps = res.pop("_hyps", None)
    # --- plot
    if plot and manip:
        chosen = sorted(manip)[:max_plot]
        _plot_manipulated(synth, ref, chosen, synth.path / "manipulated.png")
        res["plot"] = str((synth.path / "manipulated.png").resolve())
    with atomic_write(synth.path / "results.json") as fh:
        json.dump(res, fh, indent=2)
        fh.write("\n")
    if hyps is not None:
        with atomic_write(synth.path / "asr_hyps.txt") as fh:
            for u in sorted(hyps):
                fh.write(f"{u} {hyps[u]}\n")
    if results_md:
        update_tts_results_md(results_md, synth.path.parent.parent)
    return res


def _speaker_similarity(synth: SynthDir, ref: RefData, utts: Sequence[str]) -> Dict[str, Any]:
    from parastyle.data.audio import load_audio
    enc = M.SpeakerEncoder()
    cache: Dict[str, np.ndarray] = {}

    def emb(key: str, entry: str) -> np.ndarray:
        if key not in cache:
            cache[key] = enc.embed(load_audio(key, entry, 16000), 16000)
        return cache[key]
    spk2utts: Dict[str, List[str]] = {}
    for u, s in sorted(ref.utt2spk.items()):
        spk2utts.setdefault(s, []).append(u)
    gen_cos, ref_cos = [], []
    for u in utts:
        r = synth.prompt_ref(u)
        e_ref = emb("ref:" + r, ref.wav(r, f"{synth.path}/utt2prompt"))
        gen_cos.append(M.cosine(emb("gen:" + u, synth.wav_scp[u]), e_ref))
        spk = ref.utt2spk.get(r)
        others = [o for o in spk2utts.get(spk, []) if o != r]
        if others:
            ref_cos.append(M.cosine(e_ref, emb("ref:" + others[0], ref.wav_scp[others[0]])))
    return {"generated_vs_prompt": float(np.mean(gen_cos)), "n": len(gen_cos),
            "prompt_vs_same_speaker": float(np.mean(ref_cos)) if ref_cos else None, "n_reference": len(ref_cos),
            "encoder": "resemblyzer VoiceEncoder", "embedded_untrimmed": enc.untrimmed}


def _mcd(synth: SynthDir, ref: RefData) -> Dict[str, Any]:
    from parastyle.data.audio import load_audio
    from parastyle.features.frontend import build_frontend
    fe = build_frontend({"type": "logmel"})
    vals = []
    for u in synth.utts:
        r = synth.ref.get(u)
        if r is None:
            raise DataError(f"{synth.path}/utt2ref: copy synthesis utterance {u!r} has no reference")
        a = fe(load_audio(r, ref.wav(r, f"{synth.path}/utt2ref"), fe.sample_rate))
        b = fe(load_audio(u, synth.wav_scp[u], fe.sample_rate))
        vals.append(M.mcd(a, b, name=u))
    return {"mcd_db": float(np.mean(vals)), "n": len(vals)}


def vocoder_copy_synthesis(ref_data, vocoders: Sequence[str], max_utts: Optional[int] = None,
                           device: str = "cpu") -> Dict[str, Dict[str, float]]:
    """MCD / log-mel L1 of analysis-synthesis (ground-truth log-mel -> vocoder) per vocoder, and its RTF."""
    import time
    from parastyle.data.audio import load_audio
    from parastyle.features.frontend import build_frontend
    from parastyle.models.vocoder import load_vocoder
    ref = RefData(ref_data)
    fe = build_frontend({"type": "logmel"})
    utts = sorted(ref.wav_scp)[: max_utts or None]
    mels = {u: fe(load_audio(u, ref.wav_scp[u], fe.sample_rate)) for u in utts}
    out = {}
    for spec in vocoders:
        voc = load_vocoder(spec, device=device)
        mcds, l1s, secs, audio = [], [], 0.0, 0.0
        for u in utts:
            mel = mels[u]
            t0 = time.perf_counter()
            wav = voc(mel[None], torch.tensor([mel.shape[0]]))[0]
            secs += time.perf_counter() - t0
            audio += wav.numel() / voc.sample_rate
            rec = fe(wav)[: mel.shape[0]]
            mcds.append(M.mcd(mel, rec, name=u))
            l1s.append(float((rec - mel).abs().mean()))
        out[voc.name if spec == "griffin_lim" else str(spec)] = {
            "mcd_db": float(np.mean(mcds)), "logmel_l1": float(np.mean(l1s)), "rtf": secs / max(audio, 1e-9),
            "n": len(utts)}
    return out


def vocode_data_dir(ref_data, vocoder: str, out_dir, max_utts: Optional[int] = None, device: str = "cpu") -> Path:
    """Analysis-synthesis of a ground-truth data dir into a synthesis dir (the vocoder's ceiling row).

    Each recording's log-mel (the data front-end) goes through ``vocoder``; the dir follows the
    synthesis-dir contract (``utt2prompt`` = ``speech <utt>``, targets = the ground-truth labels,
    ``utt2ref`` = the utterance, ``synth_conf.yaml`` with ``copy_synthesis: true``), written under a
    temporary name and renamed at the end.
    """
    import shutil
    import soundfile as sf
    from parastyle.data.audio import load_audio
    from parastyle.features.frontend import build_frontend
    from parastyle.fileio import write_kv
    from parastyle.models.vocoder import load_vocoder
    ref = RefData(ref_data)
    out = Path(out_dir)
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "wavs").mkdir(parents=True)
    fe = build_frontend({"type": "logmel"})
    voc = load_vocoder(vocoder, device=device)
    utts = sorted(ref.wav_scp)[: max_utts or None]
    tables: Dict[str, Dict[str, str]] = {k: {} for k in ("wav.scp", "utt2spk", "text", "utt2prompt", "utt2ref")}
    for u in utts:
        mel = fe(load_audio(u, ref.wav_scp[u], fe.sample_rate))
        with torch.no_grad():
            wav = voc(mel[None], torch.tensor([mel.shape[0]]))[0]
        sf.write(str(tmp / "wavs" / f"{u}.wav"), wav.numpy(), voc.sample_rate, subtype="PCM_16")
        tables["wav.scp"][u] = str((out / "wavs" / f"{u}.wav").resolve())
        tables["utt2spk"][u] = ref.utt2spk[u]
        if u in ref.text:
            tables["text"][u] = ref.text[u]
        tables["utt2prompt"][u] = f"speech {u}"
        tables["utt2ref"][u] = u
    for f, lab in ref.labels.items():
        tables[f"utt2{f}"] = {u: lab[u] for u in utts if u in lab}
    for name, table in tables.items():
        if table:
            write_kv(tmp / name, table)
    with atomic_write(tmp / "synth_conf.yaml") as fh:
        yaml.safe_dump({"tts_exp": None, "vocoder": str(vocoder), "copy_synthesis": True, "analysis_synthesis": True,
                        "ref_data": str(ref.path.resolve()), "num_utts": len(utts)}, fh, sort_keys=False)
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)
    return out


# ---------------------------------------------------------------------------- best-of-N
def _group_prompt(synth: SynthDir, cands: Sequence[str]) -> str:
    prompts = {synth.prompt[c] for c in cands}
    if len(prompts) != 1:
        raise DataError(f"{synth.path}/utt2prompt: candidates {list(cands)[:3]} of one group have different prompts")
    return prompts.pop()


def evaluate_best_of_n(synth_dir, ref_data, judge, rankers: Mapping[str, str], asr_judge=None,
                       tag: Optional[str] = None, results_md=None, device: str = "cpu") -> Dict[str, Any]:
    """Best-of-N over the groups of ``utt2group``; writes ``<synth_dir>/results_best_of_n.json``.

    Each ranker (``{name: CLAP or ParaMETA exp}``) orders a group's candidates by the cosine of their
    speech embedding with the prompt: the caption of a text prompt (text tower), or the reference
    recording of a speech prompt (speech tower). Judge accuracy per factor of the chosen / a random
    / the worst candidate (against the group's targets), and CER of chosen vs random.
    """
    from parastyle.evaluate.best_of_n import BestOfN
    style = StyleJudge(judge, device=device)
    synth = SynthDir(synth_dir, style.sample_rate)
    ref = RefData(ref_data)
    check_independence(judge, "style judge", synth, style.train_data)
    if not synth.group:
        raise DataError(f"{synth.path}/utt2group: file not found (synthesize with --num_candidates N for best-of-N)")
    groups: Dict[str, List[str]] = {}
    for u in synth.utts:
        if u not in synth.group:
            raise DataError(f"{synth.path}/utt2group: utterance {u!r} has no group")
        groups.setdefault(synth.group[u], []).append(u)
    pred = style.predict({u: synth.wav_scp[u] for u in synth.utts})
    correct = {f: {u: float(pred[f][u] == synth.targets[f][u]) for u in synth.utts if u in synth.targets.get(f, {})}
               for f in pred}
    asr = ASRJudge(asr_judge, device=device) if asr_judge else None
    errors, ref_len = {}, {}
    if asr is not None:
        check_independence(asr_judge, "ASR judge", synth, asr.train_data)
        hyps = asr.transcribe({u: synth.wav_scp[u] for u in synth.utts})
        for u in synth.utts:
            errors[u] = edit_errors([list(synth.text[u])], [list(hyps[u])])["errors"]
        for g, cands in groups.items():
            ref_len[g] = len(synth.text[cands[0]])
    res: Dict[str, Any] = {"method": tag or synth.path.name, "synth_dir": str(synth.path.resolve()),
                           "groups": len(groups), "candidates_per_group": {g: len(c) for g, c in sorted(groups.items())},
                           "judges": {"style": str(Path(judge).resolve()),
                                      "asr": str(Path(asr_judge).resolve()) if asr_judge else None},
                           "rankers": {}, "metrics": {}}
    for name, exp in rankers.items():
        # a ranker may be the style model that conditions the TTS (it selects); only the judges must be independent
        ranker = BestOfN(exp, device=device)
        rankings: Dict[str, List[str]] = {}
        for g, cands in sorted(groups.items()):
            prompt = _group_prompt(synth, cands)
            kind, _, rest = prompt.partition(" ")
            items = [(c, synth.wav_scp[c]) for c in cands]
            if kind == "text":
                ranked = [c.id for c in ranker.score(rest, items)]
            elif kind in ("speech", "manipulated"):
                r = rest.split()[0]
                ids, emb = ranker.embed_candidates(items + [("__prompt__", ref.wav(r, f"{synth.path}/utt2prompt"))])
                k = ids.index("__prompt__")
                scores = {}
                for i, c in enumerate(ids):
                    if i != k:
                        scores[c] = float(np.mean([float(emb[gr][i] @ emb[gr][k]) for gr in emb]))
                ranked = sorted(scores, key=lambda c: (-scores[c], c))
            else:
                raise DataError(f"{synth.path}/utt2prompt: best-of-N cannot rank prompt type {kind!r} (group {g!r})")
            rankings[g] = ranked
        m: Dict[str, Any] = {}
        for f, corr in correct.items():
            sub = {g: r for g, r in rankings.items() if all(c in corr for c in r)}
            if sub:
                m[f] = M.selection_scores(sub, corr)
        if errors:
            m["cer"] = M.selection_error_rates(rankings, errors, ref_len)
        res["rankers"][name] = str(Path(exp).resolve())
        res["metrics"][name] = m
    with atomic_write(synth.path / "results_best_of_n.json") as fh:
        json.dump(res, fh, indent=2)
        fh.write("\n")
    if results_md:
        update_tts_results_md(results_md, synth.path.parent.parent)
    return res


# ---------------------------------------------------------------------------- RESULTS.md
def _f(v, pct=True) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def render_tts_tables(exp_root) -> str:
    """Markdown tables from every ``<exp_root>/*/synth_*/results*.json``."""
    root = Path(exp_root)
    rows = sorted(root.glob("*/synth_*/results.json"))
    factors = ["gender", "language", "emotion", "age"]
    out = ["### Generated speech judged by independent models (accuracy %, CER %)", "",
           "| synthesis | prompt | vocoder | n | " + " | ".join(f"{f} acc (GT)" for f in factors)
           + " | CER (GT CER) | SECS (same-speaker ref) | MCD dB |",
           "|---|---|---|---|" + "---|" * len(factors) + "---|---|---|"]
    man_rows, by_lang = [], []
    for p in rows:
        r = json.loads(p.read_text(encoding="utf-8"))
        m = r.get("metrics", {})
        acc = m.get("style_accuracy", {})
        gt = acc.get("ground_truth", {})
        intel = m.get("intelligibility") or {}
        cer = (f"{_f(intel['generated']['cer'])} ({_f(intel['ground_truth']['cer'])})" if intel else "-")
        if intel.get("generated", {}).get("by_class"):
            by_lang.append((r["method"], intel["generated"]["by_class"], intel["ground_truth"].get("by_class") or {}))
        ss = m.get("speaker_similarity") or {}
        secs = (f"{_f(ss.get('generated_vs_prompt'), False)} ({_f(ss.get('prompt_vs_same_speaker'), False)})"
                if ss else "-")
        mcd = m.get("mcd_copy_synthesis")
        mcd_cell = f"{mcd['mcd_db']:.2f}" if mcd else "-"
        voc = Path(str(r.get("vocoder") or "-")).name
        for kind in sorted(k for k in acc if not k.startswith("ground_truth")):
            cells = [f"{_f(acc[kind].get(f, {}).get('accuracy'))} ({_f(gt.get(f, {}).get('accuracy'))})"
                     for f in factors]
            out.append(f"| {r['method']} | {kind} | {voc} | {r['num_utts']} | " + " | ".join(cells)
                       + f" | {cer} | {secs} | {mcd_cell} |")
        for f, s in sorted((m.get("manipulation") or {}).items()):
            man_rows.append(f"| {r['method']} | {f} | {s['n']} | {_f(s['success'])} | {_f(s['preservation'])} | "
                            f"{_f(s.get('paper_accuracy'))} |")
    langs = sorted({g for _, gen, _ in by_lang for g in gen})
    lang_rows = [f"| {method} | " + " | ".join((f"{_f(gen[g]['cer'])} ({_f(gt[g]['cer']) if g in gt else '-'})"
                                               if g in gen else "-") for g in langs) + " |"
                 for method, gen, gt in by_lang]
    if man_rows:
        out += ["", "### Manipulation (judge on the manipulated speech, %)", "",
                "| synthesis | factor | n | success | preservation of the other factors | paper (accuracy) |",
                "|---|---|---|---|---|---|"] + man_rows
    if lang_rows:
        out += ["", "### CER % by target language (GT CER of the same texts' recordings)", "",
                "| synthesis | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)] + lang_rows
    bon = sorted(root.glob("*/synth_*/results_best_of_n.json"))
    if bon:
        out += ["", "### Best-of-N (judge accuracy % of the chosen / random / worst candidate; CER % chosen / random)",
                "", "| synthesis | ranker | groups | " + " | ".join(factors) + " | CER |",
                "|---|---|---|" + "---|" * len(factors) + "---|"]
        for p in bon:
            r = json.loads(p.read_text(encoding="utf-8"))
            for name, m in r["metrics"].items():
                cells = [(f"{_f(m[f]['chosen'])} / {_f(m[f]['random'])} / {_f(m[f]['worst'])}" if f in m else "-")
                         for f in factors]
                cer = f"{_f(m['cer']['chosen'])} / {_f(m['cer']['random'])}" if "cer" in m else "-"
                out.append(f"| {r['method']} | {name} | {r['groups']} | " + " | ".join(cells) + f" | {cer} |")
    return "\n".join(out)


def update_tts_results_md(results_md, exp_root) -> None:
    from parastyle.evaluate.parameta import update_md_section
    update_md_section(Path(results_md), "eval_tts", render_tts_tables(exp_root))


__all__ = ["SynthDir", "RefData", "StyleJudge", "check_independence", "evaluate_tts", "evaluate_best_of_n",
           "vocoder_copy_synthesis", "vocode_data_dir", "render_tts_tables", "update_tts_results_md", "PAPER_MANIPULATION"]
