"""Dataset of the style-conditioned acoustic model (``data.dataset: tts``).

Per utterance of a Kaldi data dir:

- phone ids from the ``phones`` table (``data.tts.phones``, default ``phones``; written by
  ``parastyle.bin.make_phones``) encoded with ``data.tts.phone_vocab`` (the recipe's
  ``data/lang/phones.txt``), ``<blank>`` interleaved when ``data.tts.add_blank``;
- the log-mel target from ``feats.scp`` (the ParaMETA front-end's log-mel, no CMVN: the model
  predicts exactly what the vocoder consumes);
- frame-level F0 (Hz, 0 = unvoiced) and energy from ``prosody.scp`` (``(T, 2)`` matrices written by
  ``parastyle.bin.extract_prosody`` on the same frames);
- the style: ``data.tts.style.type: vector`` -> a vector per utterance from ``<data_dir>/<data.tts.style.scp>``
  (kaldiio, e.g. ParaMETA embeddings precomputed by ``parastyle.bin.make_style_vectors``), or
  ``speaker`` -> the speaker id (the model holds a speaker table);
- labels of the factors (for the record; the TTS loss does not use them).

A missing or inconsistent entry is an error naming the file and utterance; nothing is cropped
(alignment needs whole utterances), so ``data.max_frames_per_utt`` must be null.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

from parastyle.data.dataset import StyleDataset
from parastyle.fileio import DataError
from parastyle.text.phonemes import PhoneVocab, read_phones
from parastyle.train.build import DATASETS

STYLE_TYPES = ("vector", "speaker")


def style_config(dc: Dict[str, Any]) -> Dict[str, Any]:
    """``dc["style"]`` with defaults: ``{type: vector, scp: style.scp}``."""
    sc = dict(dc.get("style") or {"type": "vector", "scp": "style.scp"})
    if sc.get("type") not in STYLE_TYPES:
        raise DataError(f"data.style.type must be one of {STYLE_TYPES}, got {sc.get('type')!r}")
    sc.setdefault("scp", "style.scp")
    return sc


class TTSDataset(StyleDataset):
    """Items: ``utt_id, phones (N,) long, feats (T, 80), f0 (T,), energy (T,), style (S,) | None,
    speaker, labels, text``."""

    def __init__(self, data_dir, factors, vocab: PhoneVocab, add_blank: bool = True, phones_table: str = "phones",
                 style: Optional[Dict[str, Any]] = None, prosody: str = "prosody.scp", seed: int = 0):
        super().__init__(data_dir, factors, use_feats=True, frontend=None, cmvn=None, max_frames_per_utt=None,
                         crop=False, seed=seed)
        d = self.data_dir
        self.vocab, self.add_blank = vocab, bool(add_blank)
        ptab = d / phones_table
        if not ptab.is_file():
            raise DataError(f"{ptab}: phone table not found (run parastyle.bin.make_phones on {d})")
        phones = read_phones(ptab)
        missing = [u for u in self.utts if u not in phones]
        if missing:
            raise DataError(f"{ptab}: {len(missing)} utterance(s) of {d}/utt2spk have no phones, e.g. {missing[:3]}")
        self.phone_ids = {u: vocab.encode(phones[u], utt=u, add_blank=self.add_blank) for u in self.utts}
        self.prosody_scp = self._require_all(d / prosody, "run parastyle.bin.extract_prosody")
        self.prosody_name = prosody
        self.style_conf = style_config({"style": style} if style else {})
        self.style_scp = None
        if self.style_conf["type"] == "vector":
            self.style_scp = self._require_all(d / self.style_conf["scp"],
                                               "precompute style vectors with parastyle.bin.make_style_vectors")
        for u, n in zip(self.utts, self.num_frames):
            if n < len(self.phone_ids[u]):
                raise DataError(f"{d}: utterance {u!r} has {n} frames for {len(self.phone_ids[u])} phone symbols "
                                f"(alignment needs at least one frame per symbol)")

    def phone_lengths(self) -> List[int]:
        return [len(self.phone_ids[u]) for u in self.utts]

    def __getitem__(self, index: int) -> Dict[str, Any]:
        import kaldiio
        item = super().__getitem__(index)
        utt = item["utt_id"]
        try:
            pros = torch.from_numpy(kaldiio.load_mat(self.prosody_scp[utt]).copy()).float()
        except Exception as e:  # noqa: BLE001 - re-raised naming the utterance
            raise DataError(f"{self.data_dir}/{self.prosody_name}: cannot read {utt!r}: {e}") from e
        if pros.dim() != 2 or pros.shape[1] != 2 or pros.shape[0] != item["feats"].shape[0]:
            raise DataError(f"{self.data_dir}/{self.prosody_name}: utterance {utt!r} has shape {tuple(pros.shape)}, "
                            f"expected ({item['feats'].shape[0]}, 2) (F0, energy per feats.scp frame)")
        item["phones"] = torch.tensor(self.phone_ids[utt], dtype=torch.long)
        item["f0"], item["energy"] = pros[:, 0], pros[:, 1]
        item["style"] = None
        if self.style_scp is not None:
            try:
                v = torch.from_numpy(kaldiio.load_mat(self.style_scp[utt]).copy()).float().reshape(-1)
            except Exception as e:  # noqa: BLE001
                raise DataError(f"{self.data_dir}/{self.style_conf['scp']}: cannot read {utt!r}: {e}") from e
            item["style"] = v
        return item

    @staticmethod
    def collate(items: List[Dict[str, Any]]) -> Dict[str, Any]:
        return collate_tts(items)


def collate_tts(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Pad TTS items: ``phones (B, N)`` (0 = pad), ``phone_lens``, ``feats (B, T, D)``, ``feat_lens``,
    ``mask (B, T)``, ``f0``/``energy (B, T)``, ``style (B, S)`` when items carry one, ``labels``,
    ``speakers``, ``utt_ids``, ``text``."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    b = len(items)
    plens = torch.tensor([len(it["phones"]) for it in items], dtype=torch.long)
    flens = torch.tensor([it["feats"].shape[0] for it in items], dtype=torch.long)
    n, t, d = int(plens.max()), int(flens.max()), items[0]["feats"].shape[1]
    phones = torch.zeros(b, n, dtype=torch.long)
    feats = torch.zeros(b, t, d)
    f0 = torch.zeros(b, t)
    energy = torch.zeros(b, t)
    for i, it in enumerate(items):
        phones[i, : plens[i]] = it["phones"]
        feats[i, : flens[i]] = it["feats"]
        f0[i, : flens[i]] = it["f0"]
        energy[i, : flens[i]] = it["energy"]
    batch: Dict[str, Any] = {
        "utt_ids": [it["utt_id"] for it in items], "phones": phones, "phone_lens": plens, "feats": feats,
        "feat_lens": flens, "mask": torch.arange(t)[None, :] < flens[:, None], "f0": f0, "energy": energy,
        "speakers": [it["speaker"] for it in items],
        "labels": {f: torch.tensor([it["labels"][f] for it in items], dtype=torch.long)
                   for f in items[0]["labels"]},
    }
    styles = [it.get("style") for it in items]
    if all(s is not None for s in styles):
        dims = {s.numel() for s in styles}
        if len(dims) != 1:
            raise DataError(f"style vectors of different sizes {sorted(dims)} in one batch "
                            f"({batch['utt_ids'][:3]}...)")
        batch["style"] = torch.stack(styles)
    if all(it.get("text") is not None for it in items):
        batch["text"] = [it["text"] for it in items]
    return batch


@DATASETS.register("tts")
def build_tts_dataset(config, data_dir, factors, train, cmvn_path=None) -> TTSDataset:
    """``data.dataset: tts``; options under ``data.tts``: ``phone_vocab`` (required), ``add_blank`` (true),
    ``phones`` (table name, ``phones``), ``prosody`` (``prosody.scp``), ``style`` (``{type: vector, scp:
    style.scp, exp, mode}`` or ``{type: speaker}``)."""
    dc = config["data"]
    tc = tts_config(dc)
    if not dc.get("feats"):
        raise DataError("data.dataset tts reads log-mel targets from feats.scp: set data.feats: true")
    if dc.get("max_frames_per_utt"):
        raise DataError("data.dataset tts aligns whole utterances: set data.max_frames_per_utt: null")
    if dc.get("cmvn") or cmvn_path:
        raise DataError("data.dataset tts predicts the front-end's log-mel itself: set data.cmvn: null")
    vocab = PhoneVocab.read(tc["phone_vocab"])
    return TTSDataset(data_dir, factors, vocab, add_blank=tc["add_blank"], phones_table=tc["phones"],
                      style=tc["style"], prosody=tc["prosody"], seed=int(config["train"]["seed"]))


def tts_config(dc: Dict[str, Any]) -> Dict[str, Any]:
    """``data.tts`` with its defaults filled in (``phone_vocab`` required)."""
    tc = dict(dc.get("tts") or {})
    unknown = set(tc) - {"phone_vocab", "add_blank", "phones", "prosody", "style"}
    if unknown:
        raise DataError(f"data.tts: unknown keys {sorted(unknown)} (known: phone_vocab, add_blank, phones, prosody, style)")
    if not tc.get("phone_vocab"):
        raise DataError("data.dataset tts needs data.tts.phone_vocab (the recipe's data/lang/phones.txt)")
    tc["add_blank"] = bool(tc.get("add_blank", True))
    tc.setdefault("phones", "phones")
    tc.setdefault("prosody", "prosody.scp")
    tc["style"] = style_config({"style": tc.get("style")})
    return tc


__all__ = ["TTSDataset", "collate_tts", "build_tts_dataset", "style_config", "tts_config"]
