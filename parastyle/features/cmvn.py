"""Global cepstral mean and variance normalisation with Kaldi's statistics format.

Statistics are a ``(2, D + 1)`` float64 matrix, as Kaldi's ``compute-cmvn-stats`` writes them:
row 0 holds the per-dimension sums and, last, the frame count N; row 1 the sums of squares
(last entry 0). Normalisation: ``y = (x - mean) / max(std, floor)`` with
``mean = sum / N`` and ``std = sqrt(sumsq / N - mean^2)``. The file is a Kaldi binary matrix
(``kaldiio.save_mat``), readable by Kaldi's ``apply-cmvn``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
import torch

from parastyle.fileio import DataError, atomic_write

PathLike = Union[str, os.PathLike]


class CMVNStats:
    """Accumulates Kaldi CMVN statistics over feature matrices ``(T, D)`` in float64."""

    def __init__(self, dim: int):
        self.stats = np.zeros((2, dim + 1), dtype=np.float64)

    @property
    def dim(self) -> int:
        return self.stats.shape[1] - 1

    @property
    def count(self) -> float:
        return float(self.stats[0, -1])

    def accumulate(self, feats: np.ndarray) -> None:
        x = np.asarray(feats, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected features (T, {self.dim}), got shape {x.shape}")
        self.stats[0, :-1] += x.sum(axis=0)
        self.stats[1, :-1] += np.square(x).sum(axis=0)
        self.stats[0, -1] += x.shape[0]

    def add(self, other: "CMVNStats") -> None:
        self.stats += other.stats

    def save(self, path: PathLike) -> None:
        """Write the statistics atomically as a Kaldi binary matrix."""
        import kaldiio
        if self.count <= 0:
            raise ValueError(f"{path}: no frames accumulated, refusing to write empty CMVN statistics")
        with atomic_write(path, "wb", encoding=None) as f:
            kaldiio.save_mat(f, self.stats)


def load_cmvn_stats(path: PathLike) -> np.ndarray:
    """Read a ``(2, D + 1)`` statistics matrix; DataError if missing or malformed."""
    import kaldiio
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CMVN statistics not found (run parastyle.bin.compute_cmvn)")
    try:
        stats = np.asarray(kaldiio.load_mat(str(path)), dtype=np.float64)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: cannot read CMVN statistics: {e}") from None
    if stats.ndim != 2 or stats.shape[0] != 2 or stats.shape[1] < 2:
        raise DataError(f"{path}: CMVN statistics must be a (2, D+1) matrix, got shape {stats.shape}")
    if stats[0, -1] <= 0:
        raise DataError(f"{path}: CMVN statistics have frame count {stats[0, -1]} (expected > 0)")
    return stats


class GlobalCMVN(torch.nn.Module):
    """``(..., D) -> (..., D)``: subtract the global mean, divide by the global std (``norm_vars``).

    Args:
        mean, std: ``(D,)`` tensors.
        norm_vars: divide by the standard deviation (False: mean normalisation only).
        std_floor: lower bound of the standard deviation (constant dimensions stay finite).
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, norm_vars: bool = True, std_floor: float = 1e-5):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", torch.clamp(std.float(), min=std_floor))
        self.norm_vars = bool(norm_vars)

    @classmethod
    def from_stats(cls, stats: np.ndarray, **kw) -> "GlobalCMVN":
        n = stats[0, -1]
        mean = stats[0, :-1] / n
        var = np.maximum(stats[1, :-1] / n - mean ** 2, 0.0)
        return cls(torch.from_numpy(mean), torch.from_numpy(np.sqrt(var)), **kw)

    @classmethod
    def from_file(cls, path: PathLike, **kw) -> "GlobalCMVN":
        return cls.from_stats(load_cmvn_stats(path), **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.mean.shape[0]:
            raise DataError(f"CMVN statistics have dimension {self.mean.shape[0]} but the features have "
                            f"{x.shape[-1]} (were they computed with another front-end?)")
        y = x - self.mean
        return y / self.std if self.norm_vars else y


def compute_stats(matrices: Iterable[np.ndarray]) -> CMVNStats:
    """Statistics of an iterable of ``(T, D)`` matrices (at least one)."""
    stats = None
    for m in matrices:
        if stats is None:
            stats = CMVNStats(np.asarray(m).shape[1])
        stats.accumulate(m)
    if stats is None:
        raise ValueError("no feature matrix to accumulate CMVN statistics from")
    return stats


def compute_data_dir_cmvn(data_dir: PathLike, out: Optional[PathLike] = None) -> CMVNStats:
    """Global statistics of every utterance of ``<data_dir>/feats.scp``, written atomically to ``out``
    (default ``<data_dir>/cmvn.ark``).

    The archives must be the ones the data dir recorded (:func:`parastyle.data.datadir.check_feats_arks`);
    an unreadable, misshapen or non-finite matrix is a DataError naming the utterance (a NaN would
    turn every normalised feature into NaN)."""
    import kaldiio
    from parastyle.data.datadir import check_feats_arks
    from parastyle.fileio import read_kv
    d = Path(data_dir)
    scp = read_kv(d / "feats.scp")
    if not scp:
        raise DataError(f"{d}/feats.scp: no utterances")
    stale = check_feats_arks(d, scp)
    if stale:
        raise DataError(stale[0])
    stats = None
    for utt, entry in scp.items():
        try:
            m = kaldiio.load_mat(entry)
        except Exception as e:  # noqa: BLE001 - kaldiio raises many types; re-raised naming the utterance
            raise DataError(f"{d}/feats.scp: cannot read features of {utt!r} ({entry}): {e}") from None
        m = np.asarray(m)
        if stats is None:
            if m.ndim != 2:
                raise DataError(f"{d}/feats.scp: features of {utt!r} have shape {m.shape}, expected (T, D)")
            stats = CMVNStats(m.shape[1])
        if m.ndim != 2 or m.shape[1] != stats.dim:
            raise DataError(f"{d}/feats.scp: features of {utt!r} have shape {m.shape}, expected (T, {stats.dim})")
        if not np.isfinite(m).all():
            raise DataError(f"{d}/feats.scp: features of {utt!r} hold {int((~np.isfinite(m)).sum())} non-finite "
                            f"value(s) (NaN/inf)")
        stats.accumulate(m)
    stats.save(out or d / "cmvn.ark")
    return stats
