"""Dump the hidden layers of a frozen SSL model (wav2vec 2.0 / HuBERT / WavLM) for a Kaldi data dir.

The format is the one the VIB front-end ``dumped`` (:class:`parastyle.models.vib.DumpedLayers`)
reads through the data dir's ``feats.scp``: one float32 matrix ``(T, L * D)`` per utterance, the
chosen transformer layers concatenated along the feature axis in increasing layer order (columns
``[i * D, (i + 1) * D)`` hold the i-th chosen layer), ``T`` = the SSL frames of the utterance
(no padding). The layers are exactly those of the ``ssl`` front-end / :class:`SSLLayerExtractor`
(transformer layer outputs, numbered 1..N as in ``torchaudio``'s ``extract_features``, the last
one with the final encoder LayerNorm of pre-LN models; every waveform normalised to zero mean and
unit variance first, for every SSL bundle, as the VIB authors' feature extractor does), so a config with ``frontend: {type: dumped, num_layers: L}``
on the dumped data dir sees what ``frontend: {type: ssl, path: ...}`` sees on the raw audio.

Outputs:

* ``<dump>/ssl_layers.ark``    the matrices (kaldiio; optionally Kaldi-compressed);
* ``<dump>/ssl_layers.yaml``   what was dumped: SSL path / arch, layers, D, sample rate, frame
                               shift, and the matching VIB front-end config;
* ``<data>/utt2num_frames``    frames per utterance;
* ``<data>/frame_shift``       the SSL frame shift in seconds (Kaldi's file; training reads it);
* ``<data>/feats.scp``         written last (temporary file + rename): marks the dump complete.

Before anything is written the data dir's ``feats.scp``, ``utt2num_frames``, ``feats_conf.yaml``
and ``cmvn.ark`` (all derived from the features being replaced) are removed, so a failed or
killed run leaves no ``feats.scp`` pointing at a partial archive; the failing utterance is named
in the error (``<data>/wav.scp:<line>: utterance '<utt>' ...``). Utterances are processed one at a
time (no padding), in eval mode under ``torch.no_grad``, on the chosen device.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from parastyle.data.datadir import write_ark_record, write_frame_shift
from parastyle.features.extract import extract_one, work_items
from parastyle.fileio import DataError, atomic_write, read_kv, write_kv

PathLike = Union[str, os.PathLike]

ARK_NAME = "ssl_layers.ark"
META_NAME = "ssl_layers.yaml"
#: data-dir files derived from the features that a dump replaces (removed before it starts)
STALE_FILES = ("feats.scp", "utt2num_frames", "feats_conf.yaml", "frame_shift", "cmvn.ark", "feats_arks")


def parse_layers(spec: Union[None, str, Sequence[int]], num_layers: int) -> List[int]:
    """Sorted, unique 1-based transformer layer numbers from ``"all"``, ``"3,6,9"``, ``"1-4,8"`` or a list.

    Layer ``i`` is the output of transformer layer ``i`` (1..``num_layers``), as numbered by the
    ``ssl`` encoder's ``layer`` argument. Raises ValueError naming the bad item and the valid range.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return list(range(1, num_layers + 1))
    if isinstance(spec, str):
        out: List[int] = []
        for item in spec.split(","):
            item = item.strip()
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
            if not m:
                raise ValueError(f"layers: bad item {item!r} in {spec!r} (expected 'all' or comma-separated "
                                 f"1-based layer numbers / ranges, e.g. '3,6,9' or '1-4')")
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            if hi < lo:
                raise ValueError(f"layers: empty range {item!r} in {spec!r}")
            out.extend(range(lo, hi + 1))
    else:
        out = [int(x) for x in spec]
    if not out:
        raise ValueError("layers: no layer selected")
    bad = [x for x in out if not 1 <= x <= num_layers]
    if bad:
        raise ValueError(f"layers: {bad} out of range: the SSL model has transformer layers 1..{num_layers} "
                         f"(1-based; there is no layer 0)")
    return sorted(set(out))


class SSLLayerDumper(nn.Module):
    """Front-end ``wav (S,) -> (T, L * D)`` float32 on the CPU: the chosen SSL layers, concatenated.

    Has the attributes :func:`parastyle.features.extract.extract_one` needs (``sample_rate``,
    ``min_samples``: the fewest samples giving one SSL frame), plus ``layers`` (1-based),
    ``layer_dim`` (D), ``dim`` (L * D) and ``frame_shift_s``.
    """

    def __init__(self, extractor, layers: Sequence[int], sample_rate: int = 16000,
                 device: Union[str, torch.device] = "cpu"):
        super().__init__()
        if not extractor.freeze:
            raise ValueError("SSLLayerDumper needs a frozen SSLLayerExtractor")
        self.extractor = extractor.to(device).eval()
        self.device = torch.device(device)
        self.layers = list(layers)
        self.sample_rate = int(sample_rate)
        self.layer_dim = int(extractor.output_dim)
        self.dim = self.layer_dim * len(self.layers)
        convs = [layer.conv for layer in extractor.model.feature_extractor.conv_layers]
        need, stride = 1, 1
        for conv in reversed(convs):                   # fewest input samples giving one output frame
            need = (need - 1) * conv.stride[0] + conv.kernel_size[0]
        for conv in convs:
            stride *= conv.stride[0]
        self.min_samples = int(need)
        self.frame_shift_s = stride / self.sample_rate

    @torch.no_grad()
    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() != 1:
            raise ValueError(f"expected a mono waveform (S,), got shape {tuple(wav.shape)}")
        x = wav.float().to(self.device)[None]
        hidden, mask = self.extractor(x, torch.tensor([x.shape[1]], device=self.device),
                                      num_layers=self.layers[-1])
        t = int(mask[0].sum())
        feats = torch.cat([hidden[i - 1][0, :t] for i in self.layers], dim=-1)
        return feats.float().cpu()


def resolve_device(device: Optional[str]) -> torch.device:
    """``"auto"``/None: CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


def dump_ssl_layers(data_dir: PathLike, ssl_path: PathLike, dump_dir: PathLike, arch: Optional[str] = None,
                    layers: Union[None, str, Sequence[int]] = "all", device: Optional[str] = "cpu",
                    sample_rate: int = 16000, compress: bool = False,
                    progress: Optional[bool] = None, normalize_waveform: bool = True) -> Dict[str, Any]:
    """Dump the chosen SSL layers of every utterance of ``data_dir`` (see the module docstring).

    Args:
        data_dir: Kaldi data dir (``utt2spk``, ``wav.scp``, optional ``segments``).
        ssl_path, arch: the SSL model, see :func:`parastyle.nn.encoders.ssl.load_ssl_model`.
        dump_dir: directory of ``ssl_layers.ark`` and ``ssl_layers.yaml``.
        layers: ``"all"``, ``"3,6,9"``, ``"1-4"`` or a list of 1-based transformer layer numbers.
        device: ``cpu``, ``cuda``, ``cuda:1`` or ``auto``.
        sample_rate: audio is resampled to this rate (the SSL model's, 16 kHz for the torchaudio bundles).
        compress: Kaldi compressed matrices (about 4x smaller, lossy).
        progress: tqdm bar: None = on a terminal only, True = always, False = never.
        normalize_waveform: normalise each waveform (zero mean, unit variance over its samples)
            before the model, for every SSL bundle, as the VIB authors' feature extractor does
            (the ``ssl`` VIB front-end does the same by default).

    Returns ``{"num_utts", "num_frames", "seconds", "utts_per_s", "layers", "layer_dim", "dim"}``.
    """
    import kaldiio
    import yaml
    from tqdm import tqdm
    from parastyle.nn.encoders.ssl import SSLLayerExtractor, load_ssl_model

    d = Path(data_dir)
    items = work_items(d)
    if not items:
        raise DataError(f"{d}/utt2spk: no utterances")
    extractor = SSLLayerExtractor(load_ssl_model(ssl_path, arch), freeze=True,
                                  normalize_waveform=bool(normalize_waveform))
    chosen = parse_layers(layers, extractor.num_layers)
    dumper = SSLLayerDumper(extractor, chosen, sample_rate=sample_rate, device=resolve_device(device))
    for name in STALE_FILES:
        (d / name).unlink(missing_ok=True)
    dump = Path(dump_dir).resolve()
    dump.mkdir(parents=True, exist_ok=True)
    ark = dump / ARK_NAME
    (dump / META_NAME).unlink(missing_ok=True)
    job_scp = dump / f".{ARK_NAME}.scp.tmp"
    frames: Dict[str, int] = {}
    start = time.time()
    bar = (tqdm(total=len(items), desc=f"dump_ssl_layers {d}", unit="utt", mininterval=2.0,
                disable=None if progress is None else False) if progress is not False else None)
    try:
        with kaldiio.WriteHelper(f"ark,scp:{ark},{job_scp}", compression_method=2 if compress else None) as writer:
            for item in items:
                utt, _, where, _ = item
                try:
                    feats = extract_one(dumper, item)
                except DataError:
                    raise
                except Exception as e:  # noqa: BLE001 - re-raised naming the utterance
                    raise DataError(f"{where}: utterance {utt!r}: the SSL model failed: "
                                    f"{type(e).__name__}: {e}") from e
                writer(utt, feats)
                frames[utt] = int(feats.shape[0])
                if bar:
                    bar.update(1)
        scp = read_kv(job_scp)
    except BaseException:
        ark.unlink(missing_ok=True)
        raise
    finally:
        job_scp.unlink(missing_ok=True)
        if bar:
            bar.close()
    meta = {"ssl_path": str(Path(ssl_path).resolve()), "arch": arch, "layers": chosen,
            "layer_dim": dumper.layer_dim, "feat_dim": dumper.dim, "sample_rate": dumper.sample_rate,
            "frame_shift_s": dumper.frame_shift_s, "normalize_waveform": bool(extractor.normalize_waveform),
            "compress": bool(compress), "frontend": {"type": "dumped", "num_layers": len(chosen)}}
    with atomic_write(dump / META_NAME) as f:
        yaml.safe_dump(meta, f, sort_keys=False)
    write_kv(d / "utt2num_frames", {u: str(n) for u, n in frames.items()})
    write_frame_shift(d, dumper.frame_shift_s)
    write_ark_record(d, [ark])              # subsets of this dir refuse the ark once it is rewritten
    write_kv(d / "feats.scp", scp)                                    # last: marks the dump complete
    seconds = time.time() - start
    return {"num_utts": len(items), "num_frames": int(sum(frames.values())), "seconds": seconds,
            "utts_per_s": len(items) / max(seconds, 1e-9), "layers": chosen,
            "layer_dim": dumper.layer_dim, "dim": dumper.dim}
