"""Utterance dataset over a Kaldi data dir: features, multi-factor labels and side information.

Features come either from ``feats.scp`` (kaldiio; optional global CMVN) or are computed on the
fly from ``wav.scp`` with a frontend (``parastyle.features.frontend.build_frontend``). Labels of
each factor come from ``utt2<factor>`` and are encoded with the factor's vocabulary; an utterance
without a line in ``utt2<factor>`` gets IGNORE_INDEX for that factor, so corpora that label
different factors share batches.
"""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from parastyle.data.collate import IGNORE_INDEX
from parastyle.fileio import DataError, iter_kv, read_kv


def _tags_from_value(value: str) -> List[str]:
    """``utt2tags`` values are space-separated tags."""
    return value.split()


def encode_factor(data_dir: Path, factor: str, vocab: Sequence[str], utts: Sequence[str]) -> Dict[str, int]:
    """Read ``utt2<factor>`` and map each label to its index in ``vocab``.

    Utterances without a line are absent from the result (unknown label). Raises DataError naming
    the file, line, utterance and label when a label is not in the vocabulary or an utterance is
    not in the data dir.
    """
    path = data_dir / f"utt2{factor}"
    index = {lab: i for i, lab in enumerate(vocab)}
    known = set(utts)
    out: Dict[str, int] = {}
    if not path.is_file():
        return out
    for n, utt, label in iter_kv(path):
        if utt not in known:
            raise DataError(f"{path}:{n}: utterance {utt!r} is not in {data_dir}/utt2spk "
                            f"(run utils/fix_data_dir.sh)")
        if label not in index:
            raise DataError(f"{path}:{n}: utterance {utt!r} has label {label!r} which is not in the "
                            f"{factor} vocabulary {list(vocab)} (data/lang/{factor}.txt)")
        out[utt] = index[label]
    return out


class StyleDataset(torch.utils.data.Dataset):
    """Items ``{"utt_id", "feats" (T, D), "labels" {factor: int}, "speaker", "caption"?, "tags"?, "text"?}``.

    Args:
        data_dir: Kaldi data dir.
        factors: ``{factor: vocabulary}``; the labels returned, in this order.
        use_feats: read ``feats.scp`` (True) or compute features with ``frontend`` (False).
        frontend: callable ``wav (S,) -> (T, D)`` with ``.sample_rate`` and ``.frame_shift_s``
            (required when ``use_feats`` is False).
        cmvn: optional callable ``(T, D) -> (T, D)`` applied after loading.
        max_frames_per_utt: crop longer utterances to this many frames at a random offset
            that depends only on ``(seed, epoch, index)`` (reproducible with any number of workers).
        crop: enable cropping (training only).
        seed: crop seed.
        augment: optional :class:`parastyle.data.augment.Augmenter` (training only): waveform
            augmentations before the frontend, SpecAugment after the crop; draws from ``(seed, epoch, index)``.
    """

    def __init__(self, data_dir, factors: Dict[str, Sequence[str]], use_feats: bool = True,
                 frontend: Optional[Callable] = None, cmvn: Optional[Callable] = None,
                 max_frames_per_utt: Optional[int] = None, crop: bool = False, seed: int = 0,
                 augment=None):
        self.data_dir = Path(data_dir)
        d = self.data_dir
        utt2spk_path = d / "utt2spk"
        if not utt2spk_path.is_file():
            raise DataError(f"{utt2spk_path}: file not found ({d} is not a Kaldi data dir)")
        self.utt2spk = read_kv(utt2spk_path)
        self.utts = sorted(self.utt2spk)
        if not self.utts:
            raise DataError(f"{utt2spk_path}: no utterances")
        self.factors = {f: list(v) for f, v in factors.items()}
        self.labels = {f: encode_factor(d, f, v, self.utts) for f, v in self.factors.items()}
        self.captions = read_kv(d / "utt2caption") if (d / "utt2caption").is_file() else None
        self.tags = ({u: _tags_from_value(v) for u, v in read_kv(d / "utt2tags").items()}
                     if (d / "utt2tags").is_file() else None)
        self.text = read_kv(d / "text", allow_empty_value=True) if (d / "text").is_file() else None
        self.use_feats = use_feats
        self.frontend = frontend
        self.cmvn = cmvn
        self.max_frames_per_utt = max_frames_per_utt
        self.crop = crop and max_frames_per_utt is not None
        self.seed = seed
        self.augment = augment
        self.epoch = 0
        if use_feats:
            self.feats_scp = self._require_all(d / "feats.scp", "run the feature extraction stage")
            from parastyle.data.datadir import check_feats_arks
            stale = check_feats_arks(d, {u: self.feats_scp[u] for u in self.utts})
            if stale:                    # archives rewritten since this dir was made: other data at the offsets
                raise DataError(stale[0] + (f" ({len(stale) - 1} more archive(s))" if len(stale) > 1 else ""))
            self.num_frames = self._feats_lengths()
        else:
            if frontend is None:
                raise ValueError("use_feats=False needs a frontend")
            self.wav_scp = read_kv(d / "wav.scp") if (d / "wav.scp").is_file() else None
            if self.wav_scp is None:
                raise DataError(f"{d}/wav.scp: file not found")
            self.segments = self._read_segments()
            self.num_frames = self._audio_lengths()

    # ------------------------------------------------------------------ lengths
    def _require_all(self, path: Path, hint: str) -> Dict[str, str]:
        if not path.is_file():
            raise DataError(f"{path}: file not found ({hint})")
        table = read_kv(path)
        missing = [u for u in self.utts if u not in table]
        if missing:
            raise DataError(f"{path}: {len(missing)} utterance(s) of utt2spk missing, e.g. {missing[:3]} ({hint})")
        return table

    def _feats_lengths(self) -> List[int]:
        p = self.data_dir / "utt2num_frames"
        if p.is_file():
            table = self._require_all(p, "rerun the feature extraction stage")
            out = []
            for u in self.utts:
                try:
                    out.append(int(table[u]))
                except ValueError:
                    raise DataError(f"{p}: utterance {u!r} has non-integer frame count {table[u]!r}") from None
            return out
        import kaldiio
        return [int(kaldiio.load_mat(self.feats_scp[u]).shape[0]) for u in self.utts]

    def _read_segments(self):
        p = self.data_dir / "segments"
        if not p.is_file():
            return None
        out = {}
        for n, utt, value in iter_kv(p):
            parts = value.split()
            try:
                out[utt] = (parts[0], float(parts[1]), float(parts[2]))
            except (IndexError, ValueError):
                raise DataError(f"{p}:{n}: expected '<utt> <reco> <start> <end>', got {utt} {value!r}") from None
        return out

    def _audio_lengths(self) -> List[int]:
        """Approximate frames per utterance from segments, utt2dur or the audio header."""
        shift = float(getattr(self.frontend, "frame_shift_s", 0.01))
        durs: Dict[str, float] = {}
        p = self.data_dir / "utt2dur"
        if self.segments is not None:
            durs = {u: e - s for u, (_, s, e) in self.segments.items()}
        elif p.is_file():
            durs = {u: float(v) for u, v in read_kv(p).items()}
        out = []
        for u in self.utts:
            if u not in durs:
                durs[u] = self._header_duration(u)
            out.append(max(1, int(math.ceil(durs[u] / shift))))
        return out

    def _header_duration(self, utt: str) -> float:
        import soundfile as sf
        entry = self.wav_scp.get(utt)
        if entry is None:
            raise DataError(f"{self.data_dir}/wav.scp: utterance {utt!r} missing")
        if entry.endswith("|") or len(entry.split()) > 1:
            raise DataError(f"{self.data_dir}: utterance {utt!r} has a piped wav.scp entry and no utt2dur; "
                            f"write utt2dur first")
        try:
            info = sf.info(entry)
        except RuntimeError as e:
            raise DataError(f"{self.data_dir}/wav.scp: utterance {utt!r}: cannot read {entry}: {e}") from None
        return info.frames / info.samplerate

    def lengths(self) -> List[int]:
        """Frames per utterance as batched (after the training crop)."""
        if self.crop:
            return [min(n, self.max_frames_per_utt) for n in self.num_frames]
        return list(self.num_frames)

    def set_epoch(self, epoch: int) -> None:
        """Select the crop offsets of ``epoch`` (call before creating the DataLoader iterator)."""
        self.epoch = int(epoch)

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self.utts)

    def load_features(self, utt: str, wav_hook: Optional[Callable] = None) -> torch.Tensor:
        """Features ``(T, D)`` of one utterance (before crop); ``wav_hook(wav) -> wav`` is applied to
        the waveform before the frontend (features computed on the fly only)."""
        if self.use_feats:
            import kaldiio
            try:
                x = torch.from_numpy(kaldiio.load_mat(self.feats_scp[utt]).copy()).float()
            except Exception as e:  # noqa: BLE001 - re-raised naming the utterance
                raise DataError(f"{self.data_dir}/feats.scp: cannot read features of {utt!r} "
                                f"({self.feats_scp[utt]}): {e}") from e
        else:
            from parastyle.data.audio import load_audio
            seg = self.segments.get(utt) if self.segments else None
            entry = self.wav_scp[seg[0]] if seg else self.wav_scp[utt]
            wav = load_audio(utt, entry, self.frontend.sample_rate,
                             segment=(seg[1], seg[2]) if seg else None)
            if wav_hook is not None:
                wav = wav_hook(wav)
            x = self.frontend(wav)
        if x.dim() != 2 or x.shape[0] == 0:
            raise DataError(f"{self.data_dir}: features of {utt!r} have shape {tuple(x.shape)}, expected (T>0, D)")
        if self.cmvn is not None:
            x = self.cmvn(x)
        return x

    def __getitem__(self, index: int) -> Dict[str, Any]:
        utt = self.utts[index]
        g = self.augment.rng(self.seed, self.epoch, index) if self.augment is not None else None
        x = self.load_features(utt, None if g is None or self.use_feats else (lambda w: self.augment.waveform(w, g)))
        if self.crop and x.shape[0] > self.max_frames_per_utt:
            rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
            start = rng.randrange(0, x.shape[0] - self.max_frames_per_utt + 1)
            x = x[start: start + self.max_frames_per_utt]
        if g is not None:
            x = self.augment.features(x, g)       # SpecAugment after the crop
        item: Dict[str, Any] = {
            "utt_id": utt,
            "feats": x,
            "labels": {f: self.labels[f].get(utt, IGNORE_INDEX) for f in self.factors},
            "speaker": self.utt2spk[utt],
        }
        if self.captions is not None:
            item["caption"] = self.captions.get(utt)
        if self.tags is not None:
            item["tags"] = self.tags.get(utt)
        if self.text is not None:
            item["text"] = self.text.get(utt)
        return item
