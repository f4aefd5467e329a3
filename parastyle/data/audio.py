"""Audio loading for ``wav.scp`` entries: float32 mono at a target sample rate.

A ``wav.scp`` value is one of (Kaldi's conventions):

* a plain path to an audio file soundfile can read (wav, flac, ogg, ...);
* a pipe ``<command> |`` whose standard output is an audio file (e.g. ``sox in.sph -t wav - |``);
* an archive entry ``<file.ark>:<byte offset>`` of a wav archive (read with kaldiio).

Every problem raises :class:`~parastyle.fileio.DataError` naming the utterance, the ``wav.scp``
entry (with file and line when the caller passes ``where``) and the reason: unreadable file,
failing command, empty audio, NaN/inf samples, or audio shorter than ``min_samples``.

A WAV file whose ``data`` chunk declares more bytes than the file holds (a truncated copy, an
interrupted download) is an error: libsndfile would silently return the samples that are there.
(Pipes are not checked: a streaming writer cannot know the size it declares.) A ``segments`` end
past the end of the recording is truncated when the overshoot is at most ``max_overshoot_s``
(0.5 s, Kaldi's ``extract-segments --max-overshoot``), counted in ``stats["truncated_segments"]``
or, without ``stats``, warned about once per utterance; a larger overshoot is an error.
"""
from __future__ import annotations

import io
import logging
import re
import struct
import subprocess
from typing import Dict, Optional, Set, Tuple

import numpy as np
import torch

from parastyle.fileio import DataError

_ARK_ENTRY = re.compile(r"^(?P<path>.+\.ark):(?P<offset>\d+)(?P<slice>\[[^\]]*\])?$")
#: Kaldi's ``extract-segments --max-overshoot`` default (seconds).
MAX_OVERSHOOT_S = 0.5
logger = logging.getLogger(__name__)
_warned_overshoot: Set[str] = set()


def wav_truncation(path: str) -> Optional[Tuple[int, int]]:
    """``(declared, present)`` data bytes of a RIFF/WAVE file whose ``data`` chunk is cut short, else None.

    Files that are not RIFF/WAVE (flac, ogg, RF64, ...) return None."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            f.seek(0, 2)
            size = f.tell()
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                cid, clen = struct.unpack("<4sI", f.read(8))
                if cid == b"data":
                    present = size - (pos + 8)
                    if clen in (0, 0xFFFFFFFF) or clen <= present:
                        return None
                    return clen, present
                pos += 8 + clen + (clen & 1)
    except OSError:
        return None
    return None


def _fail(utt: str, entry: str, where: Optional[str], reason: str) -> DataError:
    loc = f"{where}: " if where else ""
    return DataError(f"{loc}utterance {utt!r} (wav.scp entry {entry!r}): {reason}")


def _read_pipe(utt: str, entry: str, where: Optional[str]) -> Tuple[np.ndarray, int]:
    import soundfile as sf
    cmd = entry[:-1].strip()
    try:
        proc = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    except OSError as e:
        raise _fail(utt, entry, where, f"cannot run the command: {e}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise _fail(utt, entry, where, f"command exited with status {proc.returncode}"
                    + (f": {err[-1]}" if err else ""))
    if not proc.stdout:
        raise _fail(utt, entry, where, "command wrote no audio to its standard output")
    try:
        data, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise _fail(utt, entry, where, f"the command's output is not a readable audio file: {e}") from None
    return data, rate


def _read_ark(utt: str, entry: str, where: Optional[str]) -> Tuple[np.ndarray, int]:
    import kaldiio
    try:
        loaded = kaldiio.load_mat(entry)
    except Exception as e:  # noqa: BLE001 - kaldiio raises many types; re-raised naming the utterance
        raise _fail(utt, entry, where, f"cannot read the archive entry: {e}") from None
    if not isinstance(loaded, tuple):
        raise _fail(utt, entry, where, "the archive entry is a feature matrix, not a wav (expected a wav ark)")
    rate, data = loaded
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    data = data.astype(np.float32, copy=False)
    if data.ndim == 1:
        data = data[:, None]
    return data, int(rate)


def _read_file(utt: str, entry: str, where: Optional[str]) -> Tuple[np.ndarray, int]:
    import soundfile as sf
    try:
        data, rate = sf.read(entry, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise _fail(utt, entry, where, f"cannot read the audio file: {e}") from None
    cut = wav_truncation(entry)
    if cut is not None:
        raise _fail(utt, entry, where, f"truncated WAV file: its header declares {cut[0]} bytes of audio, the "
                                       f"file holds {cut[1]} (re-copy or re-create the file)")
    return data, rate


def read_audio(utt: str, entry: str, where: Optional[str] = None) -> Tuple[np.ndarray, int]:
    """Read a ``wav.scp`` entry as it is stored: ``(samples (S, C) float32, sample_rate)``."""
    entry = entry.strip()
    if entry.endswith("|"):
        return _read_pipe(utt, entry, where)
    if _ARK_ENTRY.match(entry):
        return _read_ark(utt, entry, where)
    return _read_file(utt, entry, where)


def load_audio(utt: str, entry: str, sample_rate: Optional[int] = None,
               segment: Optional[Tuple[float, float]] = None, min_samples: int = 1,
               where: Optional[str] = None, max_overshoot_s: float = MAX_OVERSHOOT_S,
               stats: Optional[Dict[str, int]] = None) -> torch.Tensor:
    """Load one utterance as a float32 mono waveform ``(S,)`` in [-1, 1].

    Args:
        utt: utterance id (for messages).
        entry: the ``wav.scp`` value (path, ``cmd |`` or ``file.ark:offset``).
        sample_rate: resample to this rate (torchaudio's band-limited sinc resampling);
            None keeps the stored rate.
        segment: ``(start_s, end_s)`` of a ``segments`` line, cut before resampling.
        min_samples: fewer samples (after resampling) is an error ("too short").
        where: ``"<data_dir>/wav.scp:<line>"`` for messages.
        max_overshoot_s: a segment may end at most this far past the end of the recording (it is
            then truncated); further is an error.
        stats: counters; ``stats["truncated_segments"]`` is incremented per truncated segment.

    Channels are averaged. Raises DataError naming the utterance, the entry and the reason.
    """
    data, rate = read_audio(utt, entry, where)
    if segment is not None:
        start, end = segment
        s, e = int(round(start * rate)), int(round(end * rate))
        if s >= data.shape[0]:
            raise _fail(utt, entry, where, f"segment {start:.3f}-{end:.3f} s starts after the end of the "
                                           f"recording ({data.shape[0] / rate:.3f} s)")
        if e > data.shape[0]:
            over = (e - data.shape[0]) / rate
            if over > max_overshoot_s + 1e-9:
                raise _fail(utt, entry, where, f"segment {start:.3f}-{end:.3f} s ends {over:.3f} s past the end "
                                               f"of the recording ({data.shape[0] / rate:.3f} s); at most "
                                               f"{max_overshoot_s} s is truncated")
            if stats is not None:
                stats["truncated_segments"] = stats.get("truncated_segments", 0) + 1
            elif utt not in _warned_overshoot:
                _warned_overshoot.add(utt)
                logger.warning("%sutterance %r: segment end %.3f s is %.3f s past the end of the recording "
                               "(%.3f s); truncated", f"{where}: " if where else "", utt, end, over,
                               data.shape[0] / rate)
        data = data[s:min(e, data.shape[0])]
    if data.shape[0] == 0:
        raise _fail(utt, entry, where, "empty audio (0 samples)")
    wav = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1, dtype=np.float32)))
    if not bool(torch.isfinite(wav).all()):
        bad = int((~torch.isfinite(wav)).sum())
        raise _fail(utt, entry, where, f"{bad} non-finite (NaN/inf) sample(s)")
    if sample_rate is not None and int(sample_rate) != int(rate):
        import torchaudio.functional as AF
        wav = AF.resample(wav, int(rate), int(sample_rate))
    if wav.numel() < int(min_samples):
        rate_out = sample_rate or rate
        raise _fail(utt, entry, where, f"too short: {wav.numel()} samples ({wav.numel() / rate_out:.4f} s) "
                                       f"at {rate_out} Hz, need at least {min_samples}")
    return wav
