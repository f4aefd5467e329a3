"""Vocoder training data: random waveform segments and their exactly aligned log-mel frames.

Registered as ``data.dataset: vocoder``. Each utterance of ``wav.scp`` is loaded at the front-end's
sample rate, zero-padded to ``T * hop`` samples where ``T = 1 + S // hop`` is its number of centred
log-mel frames, and its log-mel is computed by the data front-end (``data.frontend``, type logmel,
the features the acoustic model predicts, before any CMVN). Frame ``t`` covers samples
``[t * hop, (t + 1) * hop)``, so a segment of ``n`` frames starting at frame ``f`` pairs
``mel[f : f + n]`` with ``wav[f * hop : (f + n) * hop]``.

Training items are segments of ``data.max_frames_per_utt`` frames (the training crop); the start frame is drawn from a
generator seeded by ``(train.seed, epoch, index)`` only (reproducible with any number of workers,
exact on resume). An utterance shorter than the segment is zero-padded in the waveform *before* its
mel is computed, so the pair stays aligned (the padded frames are the front-end's mel of silence).
Evaluation items are whole utterances.

Items ``{"utt_id", "mel" (n, M), "wav" (n * hop,)}``; batches ``{"utt_ids", "mel" (B, N, M),
"mel_lens" (B,), "wav" (B, N * hop), "wav_lens" (B,)}`` (zero-padded).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F

from parastyle.data.audio import load_audio
from parastyle.fileio import DataError, read_kv
from parastyle.train.build import DATASETS


class VocoderDataset(torch.utils.data.Dataset):
    """See the module docstring. ``segment_frames=None`` gives whole utterances."""

    def __init__(self, data_dir, frontend, segment_frames: Optional[int] = None, seed: int = 0):
        from parastyle.features.frontend import LogMel
        if not isinstance(frontend, LogMel):
            raise DataError(f"the vocoder dataset needs a logmel front-end (data.frontend.type: logmel), "
                            f"got {getattr(frontend, 'to_config', lambda: frontend)()}")
        self.data_dir = Path(data_dir)
        d = self.data_dir
        for name in ("wav.scp", "utt2spk"):
            if not (d / name).is_file():
                raise DataError(f"{d}/{name}: file not found (the vocoder trains on the wavs of a Kaldi data dir)")
        self.wav_scp = read_kv(d / "wav.scp")
        self.utts = sorted(read_kv(d / "utt2spk"))
        missing = [u for u in self.utts if u not in self.wav_scp]
        if missing:
            raise DataError(f"{d}/wav.scp: {len(missing)} utterance(s) of utt2spk have no wav, e.g. {missing[:3]}")
        if (d / "segments").is_file():
            raise DataError(f"{d}/segments: the vocoder dataset reads whole recordings; extract segments first")
        self.frontend = frontend
        self.hop = int(frontend.hop_length)
        self.segment_frames = None if segment_frames is None else int(segment_frames)
        if self.segment_frames is not None and self.segment_frames < 1:
            raise ValueError(f"segment_frames must be >= 1, got {segment_frames}")
        self.seed = int(seed)
        self.epoch = 0
        self._num_frames = self._lengths_from_headers()

    def _lengths_from_headers(self) -> List[int]:
        import soundfile as sf
        d = self.data_dir
        durs = {u: float(v) for u, v in read_kv(d / "utt2dur").items()} if (d / "utt2dur").is_file() else {}
        out = []
        for u in self.utts:
            if u in durs:
                samples = int(round(durs[u] * self.frontend.sample_rate))
            else:
                entry = self.wav_scp[u]
                if entry.strip().endswith("|"):
                    raise DataError(f"{d}: utterance {u!r} has a piped wav.scp entry and no utt2dur; write utt2dur")
                try:
                    info = sf.info(entry)
                except RuntimeError as e:
                    raise DataError(f"{d}/wav.scp: utterance {u!r}: cannot read {entry}: {e}") from None
                samples = int(round(info.frames * self.frontend.sample_rate / info.samplerate))
            out.append(1 + samples // self.hop)
        return out

    def lengths(self) -> List[int]:
        if self.segment_frames is not None:
            return [self.segment_frames] * len(self.utts)
        return list(self._num_frames)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.utts)

    def load_pair(self, utt: str, min_frames: int = 0):
        """``(mel (T, M), wav (T * hop,))`` of a whole utterance, padded to at least ``min_frames`` frames."""
        wav = load_audio(utt, self.wav_scp[utt], self.frontend.sample_rate, min_samples=self.frontend.min_samples,
                         where=f"{self.data_dir}/wav.scp")
        if min_frames > 0 and wav.numel() < min_frames * self.hop:
            wav = F.pad(wav, (0, min_frames * self.hop - wav.numel()))
        mel = self.frontend(wav)                                             # (1 + S // hop, M)
        t = mel.shape[0]
        wav = F.pad(wav, (0, t * self.hop - wav.numel()))                   # S <= T * hop always
        return mel, wav

    def __getitem__(self, index: int) -> Dict[str, Any]:
        utt = self.utts[index]
        n = self.segment_frames
        mel, wav = self.load_pair(utt, min_frames=n or 0)
        if n is not None:
            rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
            start = rng.randrange(0, mel.shape[0] - n + 1)
            mel = mel[start: start + n]
            wav = wav[start * self.hop: (start + n) * self.hop]
        return {"utt_id": utt, "mel": mel, "wav": wav}

    def collate(self, items: List[Dict[str, Any]]) -> Dict[str, Any]:
        return collate_vocoder(items, self.hop)


def collate_vocoder(items: List[Dict[str, Any]], hop: int) -> Dict[str, Any]:
    """Zero-pad items into ``{"utt_ids", "mel", "mel_lens", "wav", "wav_lens"}``."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    lens = torch.tensor([it["mel"].shape[0] for it in items], dtype=torch.long)
    n, m = int(lens.max()), items[0]["mel"].shape[1]
    mel = torch.zeros(len(items), n, m)
    wav = torch.zeros(len(items), n * hop)
    for i, it in enumerate(items):
        if it["wav"].numel() != it["mel"].shape[0] * hop:
            raise DataError(f"utterance {it['utt_id']!r}: {it['wav'].numel()} samples for {it['mel'].shape[0]} "
                            f"frames (expected frames x hop {hop})")
        mel[i, : it["mel"].shape[0]] = it["mel"]
        wav[i, : it["wav"].numel()] = it["wav"]
    return {"utt_ids": [it["utt_id"] for it in items], "mel": mel, "mel_lens": lens, "wav": wav,
            "wav_lens": lens * hop}


@DATASETS.register("vocoder")
def build_vocoder_dataset(config: Dict[str, Any], data_dir, factors, train: bool, cmvn_path=None) -> VocoderDataset:
    """``data.frontend`` (logmel) is required, ``data.feats`` must be false, no CMVN (raw log-mel)."""
    dc = config["data"]
    if dc.get("feats"):
        raise DataError("data.dataset vocoder computes the log-mel from wav.scp: set data.feats: false and "
                        "data.frontend to the logmel front-end of the acoustic model")
    if dc.get("cmvn") or cmvn_path:
        raise DataError("data.dataset vocoder: the vocoder consumes the log-mel before CMVN; set data.cmvn: null")
    if not dc.get("frontend"):
        raise DataError("data.dataset vocoder needs data.frontend (type: logmel, ...)")
    from parastyle.features.frontend import build_frontend
    fe = build_frontend(dict(dc["frontend"]))
    seg = dc.get("max_frames_per_utt") if train else None
    if train and not seg:
        raise DataError("data.dataset vocoder trains on random segments: set data.max_frames_per_utt to the segment "
                        "length in frames (e.g. 32 = 8192 samples at hop 256)")
    return VocoderDataset(data_dir, fe, segment_frames=seg, seed=int(config["train"]["seed"]))
