"""F0 and energy per mel frame (targets of the TTS variance predictors, and F0 statistics).

Frames follow the centred log-mel front-end (:class:`parastyle.features.frontend.LogMel`):
frame ``t`` is centred on sample ``t * hop``, ``T = 1 + S // hop``.

- :func:`f0_per_frame`: WORLD's DIO + StoneMask (``pyworld``) at exactly those frame centres;
  0 on unvoiced frames (Hz).
- :func:`energy_per_frame`: L2 norm over frequency of the STFT magnitude of each frame (the
  FastSpeech 2 energy), with the front-end's ``n_fft`` / ``win_length`` / ``hop`` and Hann window.
"""
from __future__ import annotations

import numpy as np
import torch


def num_frames(num_samples: int, hop: int) -> int:
    return 1 + int(num_samples) // int(hop)


def f0_per_frame(wav, sr: int, hop: int, f0_floor: float = 60.0, f0_ceil: float = 800.0) -> np.ndarray:
    """F0 in Hz ``(T,)`` float32 at the frame centres ``t * hop / sr``; 0 = unvoiced.

    ``wav``: mono ``(S,)`` float array or tensor. Uses WORLD (pyworld) DIO for the raw
    contour and StoneMask to refine it.
    """
    import pyworld
    x = wav.detach().cpu().numpy() if torch.is_tensor(wav) else np.asarray(wav)
    if x.ndim != 1:
        raise ValueError(f"f0_per_frame expects a mono waveform (S,), got shape {x.shape}")
    if x.size == 0:
        raise ValueError("f0_per_frame: empty waveform")
    x = x.astype(np.float64)
    t_frames = num_frames(x.size, hop)
    period_ms = 1000.0 * hop / sr
    f0, t = pyworld.dio(x, sr, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=period_ms)
    # DIO's frame times are n * period; pin them to the front-end's centres and count
    t = np.arange(t_frames, dtype=np.float64) * hop / sr
    if f0.size < t_frames:
        f0 = np.pad(f0, (0, t_frames - f0.size))
    f0 = pyworld.stonemask(x, np.ascontiguousarray(f0[:t_frames]), t, sr)
    return f0.astype(np.float32)


def energy_per_frame(wav, n_fft: int = 1024, hop: int = 256, win_length: int = 1024) -> np.ndarray:
    """Frame energy ``(T,)`` float32: ``||STFT magnitude||_2`` per centred frame (reflect padding)."""
    x = wav if torch.is_tensor(wav) else torch.as_tensor(np.asarray(wav))
    x = x.float()
    if x.dim() != 1:
        raise ValueError(f"energy_per_frame expects a mono waveform (S,), got shape {tuple(x.shape)}")
    spec = torch.stft(x, n_fft=n_fft, hop_length=hop, win_length=win_length,
                      window=torch.hann_window(win_length), center=True, pad_mode="reflect",
                      return_complex=True).abs()
    return torch.linalg.vector_norm(spec, dim=0).numpy().astype(np.float32)


def prosody_of_wav(wav, frontend) -> np.ndarray:
    """``(T, 2)`` float32: F0 (Hz, 0 = unvoiced) and energy per frame of a logmel front-end."""
    conf = frontend.to_config()
    f0 = f0_per_frame(wav, frontend.sample_rate, frontend.hop_length)
    en = energy_per_frame(wav, conf["n_fft"], frontend.hop_length, conf["win_length"])
    return np.stack([f0, en], axis=1).astype(np.float32)


def _prosody_job(args):
    """Worker of :func:`extract_prosody`: ``[(utt, (T, 2))]`` of a chunk of work items."""
    import torch
    torch.set_num_threads(1)
    from parastyle.data.audio import load_audio
    from parastyle.features.frontend import build_frontend
    from parastyle.fileio import DataError
    items, frontend_conf, frames = args
    fe = build_frontend(dict(frontend_conf))
    out = []
    for utt, entry, where, segment in items:
        wav = load_audio(utt, entry, fe.sample_rate, segment=segment, min_samples=fe.min_samples, where=where)
        pros = prosody_of_wav(wav, fe)
        if frames is not None and int(frames[utt]) != pros.shape[0]:
            raise DataError(f"{where}: utterance {utt!r}: {pros.shape[0]} prosody frames but utt2num_frames "
                            f"says {frames[utt]} (were the features made with another front-end?)")
        if not np.isfinite(pros).all():
            raise DataError(f"{where}: utterance {utt!r}: non-finite F0/energy")
        out.append((utt, pros))
    return out


def extract_prosody(data_dir, dump_dir, frontend_conf=None, nj: int = 1, progress: bool = False) -> int:
    """F0 + energy of every utterance of ``data_dir`` into ``<dump_dir>/prosody.ark`` and, last,
    ``<data_dir>/prosody.scp`` (atomically), on the frames of ``feats.scp`` when present.

    ``frontend_conf``: the logmel config; default ``<data_dir>/feats_conf.yaml``. ``nj`` worker
    processes (one thread each); the archive is written in utterance order whatever ``nj``. An
    utterance whose frame count differs from ``utt2num_frames`` is an error naming it. Returns the
    number of utterances.
    """
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    import kaldiio
    import yaml

    from parastyle.features.extract import work_items
    from parastyle.features.frontend import LogMel, build_frontend
    from parastyle.fileio import DataError, read_kv, write_kv

    d, dump = Path(data_dir), Path(dump_dir)
    if frontend_conf is None:
        p = d / "feats_conf.yaml"
        if not p.is_file():
            raise DataError(f"{p}: not found; give the logmel front-end config (extract features first)")
        frontend_conf = yaml.safe_load(p.read_text(encoding="utf-8"))
    fe = build_frontend(dict(frontend_conf))
    if not isinstance(fe, LogMel):
        raise DataError(f"prosody targets follow a logmel front-end, got {fe.to_config()}")
    frames = read_kv(d / "utt2num_frames") if (d / "utt2num_frames").is_file() else None
    scp_path = d / "prosody.scp"
    if scp_path.exists():
        scp_path.unlink()
    dump.mkdir(parents=True, exist_ok=True)
    ark = dump / "prosody.ark"
    tmp_scp = dump / "prosody.tmp.scp"
    items = work_items(d)
    chunk = 50
    jobs = [(items[i:i + chunk], fe.to_config(), frames) for i in range(0, len(items), chunk)]
    from tqdm import tqdm
    bar = tqdm(total=len(items), disable=not progress, desc="prosody")
    with kaldiio.WriteHelper(f"ark,scp:{ark},{tmp_scp}") as writer:
        if int(nj) <= 1:
            results = map(_prosody_job, jobs)
            pool = None
        else:
            import multiprocessing as mp
            pool = ProcessPoolExecutor(int(nj), mp_context=mp.get_context("spawn"))
            results = pool.map(_prosody_job, jobs)
        try:
            for res in results:
                for utt, pros in res:
                    writer(utt, pros)
                bar.update(len(res))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    bar.close()
    table = read_kv(tmp_scp)
    tmp_scp.unlink()
    write_kv(scp_path, table)                      # last: marks the extraction complete
    return len(table)
