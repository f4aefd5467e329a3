"""Evaluation of the PolySpeech LM and its speech tokenizers.

* ASR: the LM's transcripts of the test set (greedy or beam) -> CER, WER
  (:mod:`parastyle.metrics.asr`).
* LID / GID: the label token read off after ``<sep>`` -> accuracy, UAR (balanced accuracy),
  macro-F1 (:mod:`parastyle.metrics.classification`).
* TTS: text -> LM speech tokens (top-k / temperature sampling, length limit) -> semantic token
  decoder conditioned on the speaker embedding of a *prompt* (another utterance of the same test
  speaker) -> log-mel -> vocoder (:func:`parastyle.models.vocoder.load_vocoder`) -> wav. Scored by
  an ASR judge trained on ground-truth audio (CER, next to the judge's CER on the real test audio)
  and by speaker similarity SECS (resemblyzer cosine of the generated wav and the prompt, next to
  the real utterance vs the same prompt). The same chain from the *ground-truth* tokens
  (``resynth``) measures what the tokenizer + decoder keep, independently of the LM.
* Token reconstruction (:func:`token_reconstruction`): semantic features rebuilt from the tokens
  (SSET decoder / k-means centres) vs the features, MSE per dimension, and the codebook
  perplexity on the set.

Results: ``<out>/results.json`` ``{"method", "test_set", "metrics": {"asr": {...}, "lid": {...},
"gid": {...}, "tts": {...}}}`` and per-utterance outputs (``hyp_asr.txt``, ``pred_<task>.txt``,
``tts/wav.scp``, ``tts/hyp_judge.txt``).
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from parastyle.data.lm_dataset import LABEL_TASKS, SpeechLMDataset, collate_lm
from parastyle.fileio import DataError, atomic_write, c_sort_key, read_kv, write_kv
from parastyle.metrics.asr import cer, wer
from parastyle.metrics.classification import classification_report

logger = logging.getLogger(__name__)


def _load(exp, name: str, device: str):
    from parastyle.train.checkpoint import load_model_from_exp
    from parastyle.train.config import read_saved_config
    exp = Path(exp)
    if not (exp / "config.yaml").is_file():
        raise DataError(f"{exp}: not an exp dir (config.yaml missing)")
    got = read_saved_config(exp / "config.yaml")["model"]["name"]
    if got != name:
        raise DataError(f"{exp}: an exp of model {got!r}, expected {name!r}")
    return load_model_from_exp(exp, map_location=device)


def lm_dataset(model, config, task, data_dir) -> SpeechLMDataset:
    from parastyle.train.build import build_dataset
    ds = build_dataset(config, data_dir, task.factors, train=False)
    if not isinstance(ds, SpeechLMDataset):
        raise DataError(f"the exp's data.dataset is {config['data'].get('dataset')!r}, not speech_lm")
    return ds


def prompt_of(item: Dict[str, Any]):
    """``(ids (1, P), cont (1, P, F) or None, cont_mask (1, P) or None)`` of an item, up to ``<sep>``."""
    b = collate_lm([item])
    P = item["target_start"]
    cont = b.get("cont")
    return b["ids"][:, :P], (cont[:, :P] if cont is not None else None), (b["cont_mask"][:, :P] if cont is not None else None)


def eval_labels(model, ds: SpeechLMDataset, batch_size: int = 32, device: str = "cpu") -> Dict[str, Any]:
    """``{task: {"metrics": {...}, "pred": {utt: label}}}`` for the label tasks of the dataset."""
    out = {}
    for t in LABEL_TASKS:
        idx = [i for i, (tt, _) in enumerate(ds.items) if tt == t]
        if not idx:
            continue
        names = ds.vocab.labels[t]
        y, p, pred = [], [], {}
        for s in range(0, len(idx), batch_size):
            items = [ds[i] for i in idx[s:s + batch_size]]
            batch = collate_lm(items)
            batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
            got = model.classify(batch)[t].cpu().tolist()
            for it, g in zip(items, got):
                y.append(ds.labels[t][it["utt_id"]])
                p.append(int(g))
                pred[it["utt_id"]] = names[int(g)]
        rep = classification_report(y, p, len(names))
        out[t] = {"metrics": {"accuracy": rep["accuracy"], "uar": rep["balanced_accuracy"],
                              "macro_f1": rep["macro_f1"], "num_utts": len(y),
                              "chance_uar": 1.0 / len(set(y))}, "pred": pred}
    return out


def eval_asr(model, ds: SpeechLMDataset, method: str = "greedy", beam_size: int = 4, max_len: int = 200,
             device: str = "cpu") -> Dict[str, Any]:
    idx = [i for i, (t, _) in enumerate(ds.items) if t == "asr"]
    texts = read_kv(ds.data_dir / "text")
    refs, hyps, out = [], [], {}
    for i in idx:
        it = ds[i]
        ids, cont, cm = prompt_of(it)
        gen = model.generate(ids.to(device), "asr", None if cont is None else cont.to(device),
                             None if cm is None else cm.to(device), max_len=max_len, method=method,
                             beam_size=beam_size)
        hyp = model.text_of(gen)
        out[it["utt_id"]] = hyp
        refs.append(texts[it["utt_id"]])
        hyps.append(hyp)
    return {"metrics": {"cer": cer(refs, hyps), "wer": wer(refs, hyps), "num_utts": len(refs), "decoding": method},
            "hyp": out}


def choose_prompts(utt2spk: Mapping[str, str], utts: Sequence[str]) -> Dict[str, str]:
    """For each utterance the next other utterance of the same speaker in C order (cyclic); a speaker
    with a single utterance has no prompt (error naming it)."""
    by_spk: Dict[str, List[str]] = {}
    for u in sorted(utt2spk, key=c_sort_key):
        by_spk.setdefault(utt2spk[u], []).append(u)
    out = {}
    for u in utts:
        group = by_spk[utt2spk[u]]
        if len(group) < 2:
            raise DataError(f"utterance {u!r}: its speaker {utt2spk[u]!r} has no other utterance to prompt with")
        out[u] = group[(group.index(u) + 1) % len(group)]
    return out


class TTSBackend:
    """Speech tokens -> wav: the token decoder exp (prompt speaker embedding) and the vocoder."""

    def __init__(self, token_decoder_exp, vocoder: str = "griffin_lim", device: str = "cpu",
                 mel_frontend: Optional[dict] = None):
        from parastyle.models.vocoder import load_vocoder
        self.decoder, self.dec_config, _ = _load(token_decoder_exp, "token_decoder", device)
        self.tokens_name = (self.dec_config["data"].get("token_mel") or {}).get("tokens", "sset")
        self.vocoder = load_vocoder(vocoder, device=device, frontend=mel_frontend)
        self.device = device

    def wav(self, tokens: Sequence[int], spk_emb: np.ndarray) -> torch.Tensor:
        mel = self.decoder.synthesize(tokens, torch.as_tensor(np.asarray(spk_emb)).float())
        return self.vocoder(mel[None].cpu(), torch.tensor([mel.shape[0]]))[0]


def _write_wav(path: Path, wav: torch.Tensor, sr: int) -> None:
    import soundfile as sf
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.wav")
    sf.write(str(tmp), wav.detach().cpu().numpy(), sr, subtype="PCM_16")
    tmp.replace(path)


def eval_tts(model, ds: SpeechLMDataset, backend: TTSBackend, judge_exp, out_dir, max_utts: Optional[int] = None,
             top_k: int = 20, temperature: float = 1.0, max_len: int = 600, seed: int = 0, device: str = "cpu",
             resynth: bool = True) -> Dict[str, Any]:
    """Generated speech of the test texts, scored by the ASR judge and SECS (see the module docstring)."""
    import kaldiio

    from parastyle.evaluate.asr import transcribe
    from parastyle.metrics.tts import SpeakerEncoder, cosine

    d = ds.data_dir
    lm_tokens = (ds.token_file.parent.name if ds.token_file is not None else None)
    if lm_tokens != backend.tokens_name:
        raise DataError(f"the LM generates {lm_tokens!r} tokens but the token decoder was trained on "
                        f"{backend.tokens_name!r} tokens")
    idx = [i for i, (t, _) in enumerate(ds.items) if t == "tts"]
    if max_utts:
        idx = idx[:int(max_utts)]
    if not idx:
        raise DataError(f"{d}: no tts example")
    utt2spk = read_kv(d / "utt2spk")
    texts = read_kv(d / "text")
    wavs = read_kv(d / "wav.scp")
    emb = read_kv(d / "spk_emb.scp")
    utts = [ds.items[i][1] for i in idx]
    prompts = choose_prompts(utt2spk, utts)
    out_dir = Path(out_dir)
    sr = backend.vocoder.sample_rate
    gen = torch.Generator().manual_seed(int(seed))
    enc = SpeakerEncoder(device="cpu")
    gen_table, resyn_table, lengths = {}, {}, {}
    secs, secs_gt, secs_resyn = [], [], []
    prompt_emb = {u: kaldiio.load_mat(emb[prompts[u]]) for u in utts}
    for i in idx:
        it = ds[i]
        u = it["utt_id"]
        ids, _, _ = prompt_of(it)
        toks = model.speech_of(model.generate(ids.to(device), "tts", max_len=max_len, method="sample", top_k=top_k,
                                              temperature=temperature, generator=gen))
        lengths[u] = (len(toks), len(ds.tokens[u]))
        if not toks:
            raise DataError(f"utterance {u!r}: the LM generated no speech token (it ended at once)")
        w = backend.wav(toks, prompt_emb[u])
        p = out_dir / "wav" / f"{u}.wav"
        _write_wav(p, w, sr)
        gen_table[u] = str(p.resolve())
        secs.append(cosine(enc.embed(w, sr), prompt_emb[u]))
        if resynth:
            w2 = backend.wav(ds.tokens[u], prompt_emb[u])
            p2 = out_dir / "resynth" / f"{u}.wav"
            _write_wav(p2, w2, sr)
            resyn_table[u] = str(p2.resolve())
            secs_resyn.append(cosine(enc.embed(w2, sr), prompt_emb[u]))
        secs_gt.append(cosine(kaldiio.load_mat(emb[u]), prompt_emb[u]))
    write_kv(out_dir / "wav.scp", gen_table)
    hyp = transcribe(judge_exp, gen_table, device=device)
    hyp_gt = transcribe(judge_exp, {u: wavs[u] for u in utts}, device=device)
    refs = [texts[u] for u in utts]
    m = {"judge_cer": cer(refs, [hyp[u] for u in utts]),
         "judge_cer_ground_truth": cer(refs, [hyp_gt[u] for u in utts]),
         "secs": float(np.mean(secs)), "secs_ground_truth": float(np.mean(secs_gt)),
         "num_utts": len(utts), "length_ratio": float(np.mean([a / b for a, b in lengths.values()])),
         "vocoder": backend.vocoder.name or "griffin_lim", "tokens": backend.tokens_name}
    write_kv(out_dir / "hyp_judge.txt", {u: hyp[u] or "<empty>" for u in utts})
    if resynth:
        write_kv(out_dir / "resynth_wav.scp", resyn_table)
        hyp_r = transcribe(judge_exp, resyn_table, device=device)
        m["resynth_judge_cer"] = cer(refs, [hyp_r[u] for u in utts])
        m["resynth_secs"] = float(np.mean(secs_resyn))
    return {"metrics": m}


def token_reconstruction(data_dir, tokens: str, sset_exp=None, kmeans=None, device: str = "cpu") -> Dict[str, float]:
    """MSE per feature dimension between ``<data>/feats.scp`` and the features rebuilt from
    ``<data>/<tokens>/utt2tokens`` (SSET decoder or k-means centres), and the token perplexity."""
    from parastyle.data.lm_dataset import read_token_file
    from parastyle.models.sset import perplexity
    from parastyle.tokenizers.speech_tokens import iter_feats, read_token_info

    info = read_token_info(data_dir, tokens)
    toks = read_token_file(Path(data_dir) / tokens / "utt2tokens", None, int(info["vocab_size"]))
    if sset_exp is not None:
        model, config, _ = _load(sset_exp, "sset", device)
        if config["data"].get("cmvn"):
            raise DataError(f"{sset_exp}: reconstruction error is measured on un-normalised features; the exp "
                            f"uses data.cmvn")
    elif kmeans is not None:
        from parastyle.tokenizers.kmeans import KMeansTokenizer
        km = KMeansTokenizer.load(kmeans)
    else:
        raise ValueError("token_reconstruction needs sset_exp or kmeans")
    se, n, var_num = 0.0, 0, 0.0
    all_feats = []
    for u, x in iter_feats(data_dir):
        t = toks.get(u)
        if t is None:
            raise DataError(f"{data_dir}/{tokens}/utt2tokens: no line for utterance {u!r}")
        if sset_exp is not None:
            y = model.decode_tokens(torch.tensor(t), x.shape[0]).cpu().numpy()
        else:
            y = km.decode(t)
        T = min(len(x), len(y))
        se += float(((x[:T] - y[:T]) ** 2).sum())
        n += T * x.shape[1]
        all_feats.append(x)
    feats = np.concatenate(all_feats)
    variance = float(feats.var(axis=0).mean())
    flat = torch.tensor([i for t in toks.values() for i in t])
    return {"mse": se / max(n, 1), "feature_variance": variance, "relative_mse": se / max(n, 1) / variance,
            "perplexity": perplexity(flat, int(info["vocab_size"])), "vocab_size": int(info["vocab_size"]),
            "tokens_per_frame": float(len(flat)) / len(feats)}


def evaluate_lm(exp, data_dir, out_dir=None, asr_method: str = "greedy", beam_size: int = 4,
                token_decoder=None, judge=None, vocoder: str = "griffin_lim", tts_max_utts: Optional[int] = 40,
                top_k: int = 20, temperature: float = 1.0, tts_max_len: int = 600, device: str = "cpu",
                mel_frontend: Optional[dict] = None, seed: int = 0) -> Dict[str, Any]:
    """Every task the LM exp was trained on, on ``data_dir``; writes ``<out>/results.json``."""
    exp, data_dir = Path(exp), Path(data_dir)
    model, config, task = _load(exp, "polyspeech", device)
    model.to(device)
    ds = lm_dataset(model, config, task, data_dir)
    out_dir = Path(out_dir or exp / f"decode_{data_dir.name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = sorted(set(ds.item_tasks()))
    metrics: Dict[str, Any] = {}
    if "asr" in tasks:
        r = eval_asr(model, ds, asr_method, beam_size, device=device)
        metrics["asr"] = r["metrics"]
        write_kv(out_dir / "hyp_asr.txt", {u: h or "<empty>" for u, h in r["hyp"].items()})
    for t, r in eval_labels(model, ds, device=device).items():
        metrics[t] = r["metrics"]
        write_kv(out_dir / f"pred_{t}.txt", r["pred"])
    if "tts" in tasks:
        if token_decoder is None or judge is None:
            logger.warning("%s: tts not scored (no token decoder / ASR judge given)", exp)
        else:
            backend = TTSBackend(token_decoder, vocoder, device=device, mel_frontend=mel_frontend)
            metrics["tts"] = eval_tts(model, ds, backend, judge, out_dir / "tts", tts_max_utts, top_k, temperature,
                                      tts_max_len, seed=seed, device=device)["metrics"]
    lm = config["data"].get("lm") or {}
    res = {"method": exp.name, "test_set": data_dir.name, "tasks": tasks,
           "speech_input": lm.get("speech_input", "feats"), "speech_tokens": lm.get("speech_tokens"),
           "num_parameters": int(sum(p.numel() for p in model.parameters())), "metrics": metrics}
    with atomic_write(out_dir / "results.json") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    return res


# ---------------------------------------------------------------------------- RESULTS.md tables
def _fmt(x, pct: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.1f}" if pct else f"{x:.3f}"


def results_tables(results: Sequence[Mapping[str, Any]], tokenizer_rows: Sequence[Mapping[str, Any]] = ()) -> str:
    """Markdown tables: every LM exp with each task's headline metric; SSET vs k-means rows."""
    lines = ["| exp | tasks | speech input | ASR CER % | ASR WER % | LID acc % | LID UAR % | GID acc % | "
             "GID UAR % | TTS judge CER % | TTS SECS | params |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (len(r["tasks"]) == 1, r["method"])):
        m = r["metrics"]
        g = lambda t, k: (m.get(t) or {}).get(k)  # noqa: E731
        lines.append(f"| {r['method']} | {'+'.join(r['tasks'])} | {r['speech_input']} | {_fmt(g('asr', 'cer'))} | "
                     f"{_fmt(g('asr', 'wer'))} | {_fmt(g('lid', 'accuracy'))} | {_fmt(g('lid', 'uar'))} | "
                     f"{_fmt(g('gid', 'accuracy'))} | {_fmt(g('gid', 'uar'))} | {_fmt(g('tts', 'judge_cer'))} | "
                     f"{_fmt(g('tts', 'secs'), False)} | {r.get('num_parameters', 0) / 1e6:.2f}M |")
    tts = [r for r in results if (r["metrics"].get("tts"))]
    if tts:
        lines += ["", "| exp | tokens | TTS judge CER % | judge CER % on real audio | resynth (true tokens) CER % | "
                  "SECS | resynth SECS | real-audio SECS | gen/true token length |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(tts, key=lambda r: r["method"]):
            t = r["metrics"]["tts"]
            lines.append(f"| {r['method']} | {t['tokens']} | {_fmt(t['judge_cer'])} | {_fmt(t['judge_cer_ground_truth'])} | "
                         f"{_fmt(t.get('resynth_judge_cer'))} | {_fmt(t['secs'], False)} | "
                         f"{_fmt(t.get('resynth_secs'), False)} | {_fmt(t['secs_ground_truth'], False)} | "
                         f"{t['length_ratio']:.2f} |")
    if tokenizer_rows:
        lines += ["", "| tokenizer | vocabulary | tokens / semantic frame | perplexity | reconstruction MSE | "
                  "MSE / feature variance |", "|---|---|---|---|---|---|"]
        for r in tokenizer_rows:
            lines.append(f"| {r['name']} | {r['vocab_size']} | {r['tokens_per_frame']:.2f} | {r['perplexity']:.1f} | "
                         f"{r['mse']:.4f} | {r['relative_mse']:.3f} |")
    return "\n".join(lines) + "\n"
