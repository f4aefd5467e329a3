"""Dataset of the multitask speech LM (PolySpeech): one item = one (task, utterance) sequence.

Sequence layout (union vocabulary :class:`PolyVocab`; ``[cont]`` = continuous semantic embedding
frames from ``feats.scp`` entering through the model's adapter)::

    asr  <asr> [cont] or speech tokens  <sep> text units      <eos>
    tts  <tts> text units               <sep> speech tokens   <eos>
    lid  <lid> [cont] or speech tokens  <sep> language label  <eos>
    gid  <gid> [cont] or speech tokens  <sep> gender label    <eos>

The loss is on the part after ``<sep>`` (the targets) only. Configuration (``data.lm``)::

    tasks: [asr, tts, lid, gid]     # the same config trains one task by listing one
    speech_input: feats             # feats (continuous, feats.scp) | tokens (speech tokens)
    speech_tokens: sset             # <data_dir>/<speech_tokens>/utt2tokens (make_tokens)
    max_input: null                 # crop of the speech input (frames / tokens) in training

Vocabulary sizes come from ``config["model"]``: ``text_units`` (sentencepiece model; its pieces,
through :class:`parastyle.text.tokenizer.SentencePieceTokenizer`, are the text units) and
``num_speech_tokens``; ``model.labels`` (default ``{lid: language, gid: gender}``) names the factor
each label task reads off. Bad data fails with the file, line and utterance: an empty transcript, a
speech token out of range, an utterance without a line in ``utt2tokens``, an unknown task.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch

from parastyle.data.collate import IGNORE_INDEX
from parastyle.data.dataset import encode_factor
from parastyle.fileio import DataError, iter_kv, read_kv
from parastyle.train.build import DATASETS

logger = logging.getLogger(__name__)

TASKS = ("asr", "tts", "lid", "gid")
SPECIALS = ("<pad>", "<eos>", "<sep>", "<asr>", "<tts>", "<lid>", "<gid>")
PAD, EOS, SEP = 0, 1, 2
LABEL_TASKS = ("lid", "gid")


class PolyVocab:
    """Union vocabulary: specials, text units, speech tokens, then label tokens of each label task.

    ``segments`` maps a segment name (``special``, ``text``, ``speech``, ``label:<task>``) to its
    ``[start, end)`` range of union ids.
    """

    def __init__(self, num_text: int, num_speech: int, labels: Mapping[str, Sequence[str]]):
        if num_text < 1 or num_speech < 1:
            raise ValueError(f"vocabulary sizes must be positive (text {num_text}, speech {num_speech})")
        self.num_text, self.num_speech = int(num_text), int(num_speech)
        self.labels = {t: list(v) for t, v in labels.items()}
        self.segments: Dict[str, tuple] = {}
        pos = 0
        for name, size in [("special", len(SPECIALS)), ("text", self.num_text), ("speech", self.num_speech)] + \
                [(f"label:{t}", len(self.labels[t])) for t in sorted(self.labels)]:
            self.segments[name] = (pos, pos + size)
            pos += size
        self.size = pos

    def task_id(self, task: str) -> int:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; the tasks are {list(TASKS)}")
        return SPECIALS.index(f"<{task}>")

    def text(self, i: int) -> int:
        return self.segments["text"][0] + int(i)

    def speech(self, i: int) -> int:
        return self.segments["speech"][0] + int(i)

    def label(self, task: str, i: int) -> int:
        return self.segments[f"label:{task}"][0] + int(i)

    def output_range(self, task: str) -> tuple:
        """``[start, end)`` of the ids a task generates (``<eos>`` is allowed besides, except for labels)."""
        return {"asr": self.segments["text"], "tts": self.segments["speech"]}.get(task) or \
            self.segments[f"label:{task}"]

    def boundaries(self) -> List[tuple]:
        return list(self.segments.values())


def load_text_units(path) -> "SentencePieceTokenizer":  # noqa: F821
    """The sentencepiece text units of the LM (``model.text_units``)."""
    from parastyle.text.tokenizer import SentencePieceTokenizer
    return SentencePieceTokenizer(path)


DEFAULT_LABELS = {"lid": "language", "gid": "gender"}


def label_factors(model_conf: Mapping[str, Any]) -> Dict[str, str]:
    """``{label task: factor}`` of ``model.labels`` (default lid -> language, gid -> gender)."""
    return dict(model_conf.get("labels") or DEFAULT_LABELS)


def vocab_from_config(model_conf: Mapping[str, Any], factors: Mapping[str, Sequence[str]], lang_dir=None):
    """``(PolyVocab, text tokenizer)`` from the model config and the factor vocabularies.

    A label task has label tokens when its factor (``model.labels``) is among ``factors``.
    """
    tok = load_text_units(resolve_path(model_conf["text_units"], lang_dir))
    labels = {t: factors[f] for t, f in label_factors(model_conf).items() if f in factors}
    for t in labels:
        if t not in LABEL_TASKS:
            raise DataError(f"model.labels: {t!r} is not a label task ({list(LABEL_TASKS)})")
    return PolyVocab(len(tok), int(model_conf["num_speech_tokens"]), labels), tok


def resolve_path(p, lang_dir=None) -> Path:
    """``p`` as given, else relative to ``lang_dir``."""
    p = Path(p)
    if p.is_file() or lang_dir is None or p.is_absolute():
        return p
    return Path(lang_dir) / p.name


def read_token_file(path, utts: Optional[Sequence[str]], num_tokens: int) -> Dict[str, List[int]]:
    """``utt2tokens`` (``utt t1 t2 ...``) -> ``{utt: [int]}``; every id checked against ``num_tokens``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: speech token file not found (write it with python -m parastyle.bin.make_tokens)")
    known = set(utts) if utts is not None else None
    out: Dict[str, List[int]] = {}
    for n, utt, value in iter_kv(path):
        if known is not None and utt not in known:
            raise DataError(f"{path}:{n}: utterance {utt!r} is not in the data dir")
        try:
            ids = [int(x) for x in value.split()]
        except ValueError:
            raise DataError(f"{path}:{n}: utterance {utt!r}: speech tokens must be integers, got {value[:60]!r}")
        bad = [i for i in ids if not 0 <= i < num_tokens]
        if bad:
            raise DataError(f"{path}:{n}: utterance {utt!r}: speech token id {bad[0]} is out of range "
                            f"[0, {num_tokens}) (model.num_speech_tokens; tokens of another tokenizer?)")
        if not ids:
            raise DataError(f"{path}:{n}: utterance {utt!r} has no speech token")
        out[utt] = ids
    return out


class SpeechLMDataset(torch.utils.data.Dataset):
    """Items ``{"utt_id", "task", "ids" [int], "cont" (T, F) or None, "cont_start", "target_start"}``.

    ``ids`` is the whole sequence in union ids (0 at the continuous positions
    ``[cont_start, cont_start + T)``); the targets are ``ids[target_start:]``.
    """

    def __init__(self, data_dir, vocab: PolyVocab, text_tokenizer, tasks: Sequence[str],
                 labels: Mapping[str, str], factors: Mapping[str, Sequence[str]],
                 speech_input: str = "feats", speech_tokens: Optional[str] = "sset", cmvn=None,
                 max_input: Optional[int] = None, crop: bool = False, seed: int = 0):
        self.data_dir = Path(data_dir)
        d = self.data_dir
        for t in tasks:
            if t not in TASKS:
                raise DataError(f"unknown task {t!r} in data.lm.tasks; the tasks are {list(TASKS)}")
            if t in LABEL_TASKS and t not in vocab.labels:
                raise DataError(f"task {t!r} reads off factor {labels.get(t)!r}, whose vocabulary is not loaded "
                                f"(list it in data.factors; loaded: {sorted(factors)})")
        if speech_input not in ("feats", "tokens"):
            raise DataError(f"data.lm.speech_input must be feats or tokens, got {speech_input!r}")
        self.vocab, self.tok, self.tasks = vocab, text_tokenizer, list(tasks)
        self.speech_input, self.cmvn = speech_input, cmvn
        self.max_input, self.crop, self.seed, self.epoch = max_input, crop, seed, 0
        utt2spk = read_kv(d / "utt2spk")
        self.utts_all = sorted(utt2spk)
        needs_tokens = "tts" in tasks or (speech_input == "tokens" and any(t != "tts" for t in tasks))
        self.tokens: Dict[str, List[int]] = {}
        self.token_file = None
        if needs_tokens:
            if not speech_tokens:
                raise DataError("data.lm.speech_tokens is not set but the tasks need speech tokens")
            self.token_file = d / speech_tokens / "utt2tokens"
            self.tokens = read_token_file(self.token_file, self.utts_all, vocab.num_speech)
        self.feats: Dict[str, str] = {}
        self.num_frames: Dict[str, int] = {}
        if speech_input == "feats" and any(t != "tts" for t in tasks):
            self.feats = read_kv(d / "feats.scp")
            if (d / "utt2num_frames").is_file():
                self.num_frames = {u: int(v) for u, v in read_kv(d / "utt2num_frames").items()}
            else:
                import kaldiio
                self.num_frames = {u: int(kaldiio.load_mat(p).shape[0]) for u, p in self.feats.items()}
        texts = read_kv(d / "text", allow_empty_value=True) if (d / "text").is_file() else {}
        self.text_ids: Dict[str, List[int]] = {}
        if "asr" in tasks or "tts" in tasks:
            if not texts:
                raise DataError(f"{d}/text: no transcript (needed by the asr/tts tasks)")
            for n, (utt, text) in enumerate(sorted(texts.items()), 1):
                if not text.strip():
                    raise DataError(f"{d}/text: utterance {utt!r} has an empty transcript (remove the utterance "
                                    f"or give its text; the asr/tts tasks need one)")
                ids = text_tokenizer.encode(text, utt)
                self.text_ids[utt] = [vocab.text(i) for i in ids]
        self.labels: Dict[str, Dict[str, int]] = {}
        for t in LABEL_TASKS:
            if t in tasks:
                f = labels[t]
                self.labels[t] = encode_factor(d, f, factors[f], self.utts_all)
        self.items: List[tuple] = []
        for t in self.tasks:
            skipped = []
            for u in self.utts_all:
                if t in ("asr", "tts") and u not in self.text_ids:
                    skipped.append(u)
                    continue
                if t in LABEL_TASKS and u not in self.labels[t]:
                    skipped.append(u)
                    continue
                if t == "tts" or speech_input == "tokens":
                    if u not in self.tokens:
                        raise DataError(f"{self.token_file}: no line for utterance {u!r} (task {t}); rerun "
                                        f"make_tokens on {d}")
                if t != "tts" and speech_input == "feats" and u not in self.feats:
                    raise DataError(f"{d}/feats.scp: no line for utterance {u!r} (task {t})")
                self.items.append((t, u))
            if skipped:
                logger.warning("%s: task %s: %d of %d utterance(s) without %s are not examples of it, e.g. %s",
                               d, t, len(skipped), len(self.utts_all),
                               "text" if t in ("asr", "tts") else f"utt2{labels[t]}", skipped[:3])
        if not self.items:
            raise DataError(f"{d}: no example of the tasks {self.tasks}")

    # ------------------------------------------------------------------ lengths
    def _input_len(self, task: str, utt: str) -> int:
        if task == "tts":
            return len(self.text_ids[utt])
        n = len(self.tokens[utt]) if self.speech_input == "tokens" else self.num_frames[utt]
        return min(n, self.max_input) if self.max_input and self.crop else n

    def _target_len(self, task: str, utt: str) -> int:
        if task == "asr":
            return len(self.text_ids[utt])
        if task == "tts":
            return len(self.tokens[utt])
        return 1

    def lengths(self) -> List[int]:
        """Sequence length of every item: ``1 + input + 1 + target + 1``."""
        return [3 + self._input_len(t, u) + self._target_len(t, u) for t, u in self.items]

    def item_tasks(self) -> List[str]:
        return [t for t, _ in self.items]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    # ------------------------------------------------------------------ items
    def _speech_input(self, utt: str, index: int):
        """``(ids, cont)``: speech tokens as union ids, or continuous frames ``(T, F)``."""
        if self.speech_input == "tokens":
            seq = self.tokens[utt]
            cont = None
        else:
            import kaldiio
            try:
                cont = torch.from_numpy(kaldiio.load_mat(self.feats[utt]).copy()).float()
            except Exception as e:  # noqa: BLE001 - name the utterance
                raise DataError(f"{self.data_dir}/feats.scp: utterance {utt!r}: cannot read {self.feats[utt]}: {e}")
            if self.cmvn is not None:
                cont = self.cmvn(cont)
            seq = None
        n = len(seq) if seq is not None else cont.shape[0]
        if self.crop and self.max_input and n > self.max_input:
            rng = random.Random((self.seed * 1000003 + self.epoch) * 1000003 + index)
            s = rng.randrange(n - self.max_input + 1)
            seq = seq[s:s + self.max_input] if seq is not None else None
            cont = cont[s:s + self.max_input] if cont is not None else None
        ids = [self.vocab.speech(i) for i in seq] if seq is not None else [PAD] * cont.shape[0]
        return ids, cont

    def __getitem__(self, index: int) -> Dict[str, Any]:
        task, utt = self.items[index]
        v = self.vocab
        cont = None
        if task == "tts":
            inp = self.text_ids[utt]
            tgt = [v.speech(i) for i in self.tokens[utt]]
        else:
            inp, cont = self._speech_input(utt, index)
            tgt = self.text_ids[utt] if task == "asr" else [v.label(task, self.labels[task][utt])]
        ids = [v.task_id(task)] + inp + [SEP] + tgt + [EOS]
        return {"utt_id": utt, "task": task, "ids": ids, "cont": cont, "cont_start": 1,
                "target_start": len(inp) + 2}

    def collate(self, items: List[Dict[str, Any]]) -> Dict[str, Any]:
        return collate_lm(items)


def collate_lm(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Right-padded batch::

        utt_ids list[str]; tasks list[str]
        ids       LongTensor (B, L)   union ids, PAD after the end and at continuous positions
        lens      LongTensor (B,)
        cont      FloatTensor (B, L, F)  continuous input at its positions (only if an item has one)
        cont_mask BoolTensor (B, L)
        targets   LongTensor (B, L)   targets[b, i] = ids[b, i + 1] where position i + 1 is a target,
                                      IGNORE_INDEX elsewhere (loss on the target part only)
        prompt_lens LongTensor (B,)   positions up to and including <sep>
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    lens = torch.tensor([len(it["ids"]) for it in items], dtype=torch.long)
    B, L = len(items), int(lens.max())
    ids = torch.full((B, L), PAD, dtype=torch.long)
    targets = torch.full((B, L), IGNORE_INDEX, dtype=torch.long)
    cont_mask = torch.zeros(B, L, dtype=torch.bool)
    dims = {it["cont"].shape[1] for it in items if it["cont"] is not None}
    if len(dims) > 1:
        raise DataError(f"continuous inputs of different dimensions in one batch: {sorted(dims)}")
    cont = torch.zeros(B, L, dims.pop()) if dims else None
    for b, it in enumerate(items):
        n = len(it["ids"])
        ids[b, :n] = torch.tensor(it["ids"], dtype=torch.long)
        ts = it["target_start"]
        targets[b, ts - 1:n - 1] = ids[b, ts:n]
        if it["cont"] is not None:
            s, T = it["cont_start"], it["cont"].shape[0]
            cont[b, s:s + T] = it["cont"]
            cont_mask[b, s:s + T] = True
    batch = {"utt_ids": [it["utt_id"] for it in items], "tasks": [it["task"] for it in items], "ids": ids,
             "lens": lens, "targets": targets, "cont_mask": cont_mask,
             "prompt_lens": torch.tensor([it["target_start"] for it in items], dtype=torch.long)}
    if cont is not None:
        batch["cont"] = cont
    return batch


def lm_conf(config: Mapping[str, Any]) -> Dict[str, Any]:
    """``data.lm`` with its defaults."""
    c = dict(config["data"].get("lm") or {})
    c.setdefault("tasks", list(TASKS))
    c.setdefault("speech_input", "feats")
    c.setdefault("speech_tokens", "sset")
    c.setdefault("max_input", None)
    return c


@DATASETS.register("speech_lm")
def build_speech_lm_dataset(config, data_dir, factors, train, cmvn_path=None) -> SpeechLMDataset:
    c = lm_conf(config)
    cmvn_path = cmvn_path if cmvn_path is not None else config["data"].get("cmvn")
    cmvn = None
    if cmvn_path:
        from parastyle.features.cmvn import GlobalCMVN
        cmvn = GlobalCMVN.from_file(cmvn_path)
    vocab, tok = vocab_from_config(config["model"], factors)
    return SpeechLMDataset(data_dir, vocab, tok, c["tasks"], label_factors(config["model"]), factors,
                           c["speech_input"],
                           c["speech_tokens"], cmvn=cmvn, max_input=c["max_input"], crop=train,
                           seed=int(config["train"]["seed"]))


class TokenMelDataset(torch.utils.data.Dataset):
    """Items ``{"utt_id", "tokens" [int], "mel" (T, M), "spk_emb" (E,)}`` for the semantic token decoder.

    Reads ``<data>/<tokens>/utt2tokens`` (speech tokens), ``<data>/mel.scp`` (the acoustic log-mel the
    tokens decode to; written by :func:`parastyle.features.semantic.copy_data_dir`) and
    ``<data>/spk_emb.scp`` (speaker embeddings, :func:`parastyle.features.semantic.dump_speaker_embeddings`).
    Every utterance needs all three (an absent line is an error naming the file and utterance).
    """

    def __init__(self, data_dir, tokens: str, num_tokens: int, upsample: int, mel: str = "mel.scp",
                 spk_emb: str = "spk_emb.scp", max_tokens: Optional[int] = None, crop: bool = False, seed: int = 0):
        self.data_dir = d = Path(data_dir)
        self.utts = sorted(read_kv(d / "utt2spk"))
        self.tokens = read_token_file(d / tokens / "utt2tokens", self.utts, num_tokens)
        tables = {}
        for name in (mel, spk_emb):
            if not (d / name).is_file():
                raise DataError(f"{d / name}: not found (the poly1 recipe writes it with the semantic features)")
            tables[name] = read_kv(d / name)
        self.mel, self.spk = tables[mel], tables[spk_emb]
        for u in self.utts:
            for name, table in ((f"{tokens}/utt2tokens", self.tokens), (mel, self.mel), (spk_emb, self.spk)):
                if u not in table:
                    raise DataError(f"{d / name}: no line for utterance {u!r}")
        self.upsample, self.max_tokens, self.crop, self.seed, self.epoch = int(upsample), max_tokens, crop, seed, 0

    def __len__(self) -> int:
        return len(self.utts)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def lengths(self) -> List[int]:
        n = [len(self.tokens[u]) for u in self.utts]
        if self.crop and self.max_tokens:
            n = [min(x, self.max_tokens) for x in n]
        return [x * self.upsample for x in n]

    def __getitem__(self, index: int) -> Dict[str, Any]:
        import kaldiio
        u = self.utts[index]
        tok = self.tokens[u]
        try:
            mel = torch.from_numpy(kaldiio.load_mat(self.mel[u]).copy()).float()
            spk = torch.from_numpy(kaldiio.load_mat(self.spk[u]).copy()).float().reshape(-1)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{self.data_dir}: utterance {u!r}: cannot read its mel / speaker embedding: {e}")
        if self.crop and self.max_tokens and len(tok) > self.max_tokens:
            rng = random.Random((self.seed * 1000003 + self.epoch) * 1000003 + index)
            s = rng.randrange(len(tok) - self.max_tokens + 1)
            tok = tok[s:s + self.max_tokens]
            mel = mel[s * self.upsample:(s + self.max_tokens) * self.upsample]
        return {"utt_id": u, "tokens": tok, "mel": mel, "spk_emb": spk}

    def collate(self, items: List[Dict[str, Any]]) -> Dict[str, Any]:
        B = len(items)
        tl = torch.tensor([len(it["tokens"]) for it in items])
        ml = torch.tensor([it["mel"].shape[0] for it in items])
        tokens = torch.zeros(B, int(tl.max()), dtype=torch.long)
        mel = torch.zeros(B, int(ml.max()), items[0]["mel"].shape[1])
        for b, it in enumerate(items):
            tokens[b, : tl[b]] = torch.tensor(it["tokens"])
            mel[b, : ml[b]] = it["mel"]
        return {"utt_ids": [it["utt_id"] for it in items], "tokens": tokens, "token_lens": tl, "mel": mel,
                "mel_lens": ml, "spk_emb": torch.stack([it["spk_emb"] for it in items])}


@DATASETS.register("token_mel")
def build_token_mel_dataset(config, data_dir, factors, train, cmvn_path=None) -> TokenMelDataset:
    c = dict(config["data"].get("token_mel") or {})
    m = config["model"]
    return TokenMelDataset(data_dir, c.get("tokens", "sset"), int(m["num_tokens"]), int(m.get("upsample", 4)),
                           mel=c.get("mel", "mel.scp"), spk_emb=c.get("spk_emb", "spk_emb.scp"),
                           max_tokens=c.get("max_tokens"), crop=train, seed=int(config["train"]["seed"]))
