"""Audio loading for ``wav.scp`` entries: float32 mono at a target sample rate.

A ``wav.scp`` value is one of (Kaldi's conventions):

* a plain path to an audio file soundfile can read (wav, flac, ogg, ...);
* a pipe ``<command> |`` whose standard output is an audio file (e.g. ``sox in.sph -t wav - |``);
* an archive entry ``<file.ark>:<byte offset>`` of a wav archive (read with kaldiio).

Every problem raises :class:`~parastyle.fileio.DataError` naming the utterance, the ``wav.scp``
entry (with file and line when the caller passes ``where``) and the reason: unreadable file,
failing command, empty audio, NaN/inf samples, or audio shorter than ``min_samples``.
"""
from __future__ import annotations

import io
import re
import subprocess
from typing import Optional, Tuple

import numpy as np
import torch

from parastyle.fileio import DataError

_ARK_ENTRY = re.compile(r"^(?P<path>.+\.ark):(?P<offset>\d+)(?P<slice>\[[^\]]*\])?$")


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
               where: Optional[str] = None) -> torch.Tensor:
    """Load one utterance as a float32 mono waveform ``(S,)`` in [-1, 1].

    Args:
        utt: utterance id (for messages).
        entry: the ``wav.scp`` value (path, ``cmd |`` or ``file.ark:offset``).
        sample_rate: resample to this rate (torchaudio's band-limited sinc resampling);
            None keeps the stored rate.
        segment: ``(start_s, end_s)`` of a ``segments`` line, cut before resampling.
        min_samples: fewer samples (after resampling) is an error ("too short").
        where: ``"<data_dir>/wav.scp:<line>"`` for messages.

    Channels are averaged. Raises DataError naming the utterance, the entry and the reason.
    """
    data, rate = read_audio(utt, entry, where)
    if segment is not None:
        start, end = segment
        s, e = int(round(start * rate)), int(round(end * rate))
        if s >= data.shape[0]:
            raise _fail(utt, entry, where, f"segment {start:.3f}-{end:.3f} s starts after the end of the "
                                           f"recording ({data.shape[0] / rate:.3f} s)")
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
