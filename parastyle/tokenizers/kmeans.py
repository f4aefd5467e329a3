"""k-means discretisation of semantic features (the baseline PolySpeech compares SSET with).

Fit: scikit-learn ``MiniBatchKMeans`` on (at most ``max_frames``, randomly chosen) frames of the
training features. The model is the ``(K, D)`` centre matrix saved as ``.npz`` (``centers``,
``seed``, ``feat_dim``; no pickle). A frame's token is the index of its nearest centre in
Euclidean distance (ties: the lowest index), computed here with numpy in blocks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from parastyle.fileio import DataError, atomic_write


class KMeansTokenizer:
    """``tokens(feats (T, D)) -> (T,)`` nearest-centre indices; ``decode(tokens) -> (T, D)`` centres."""

    def __init__(self, centers: np.ndarray):
        centers = np.asarray(centers, dtype=np.float32)
        if centers.ndim != 2 or centers.shape[0] < 2:
            raise ValueError(f"k-means centres must be (K >= 2, D), got {centers.shape}")
        self.centers = centers
        self._sq = (centers.astype(np.float64) ** 2).sum(1)

    @property
    def vocab_size(self) -> int:
        return int(self.centers.shape[0])

    @property
    def feat_dim(self) -> int:
        return int(self.centers.shape[1])

    def tokens(self, feats: np.ndarray, block: int = 4096) -> np.ndarray:
        feats = np.asarray(feats, dtype=np.float64)
        if feats.ndim != 2 or feats.shape[1] != self.feat_dim:
            raise ValueError(f"features must be (T, {self.feat_dim}), got {feats.shape}")
        out = np.empty(feats.shape[0], dtype=np.int64)
        c = self.centers.astype(np.float64)
        for s in range(0, feats.shape[0], block):
            x = feats[s:s + block]
            d = (x ** 2).sum(1, keepdims=True) - 2 * x @ c.T + self._sq[None]
            out[s:s + block] = d.argmin(1)
        return out

    def decode(self, tokens) -> np.ndarray:
        return self.centers[np.asarray(tokens, dtype=np.int64)]

    def save(self, path, seed: int = 0) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, mode="wb", encoding=None) as f:
            np.savez(f, centers=self.centers, seed=np.int64(seed), feat_dim=np.int64(self.feat_dim))

    @classmethod
    def load(cls, path) -> "KMeansTokenizer":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: k-means model not found (fit it with python -m parastyle.bin.make_tokens "
                            f"--kmeans_fit K)")
        with np.load(path, allow_pickle=False) as z:
            return cls(z["centers"])


def fit_kmeans(frames: Iterable[np.ndarray], num_clusters: int, max_frames: Optional[int] = 200000,
               seed: int = 0, batch_size: int = 4096) -> KMeansTokenizer:
    """MiniBatchKMeans on the concatenated frames (a random subset of ``max_frames`` if more)."""
    from sklearn.cluster import MiniBatchKMeans

    x = np.concatenate([np.asarray(f, dtype=np.float32) for f in frames], axis=0)
    if x.shape[0] < num_clusters:
        raise DataError(f"{x.shape[0]} frames are fewer than the {num_clusters} k-means clusters")
    rng = np.random.default_rng(seed)
    if max_frames is not None and x.shape[0] > max_frames:
        x = x[np.sort(rng.choice(x.shape[0], size=max_frames, replace=False))]
    km = MiniBatchKMeans(n_clusters=int(num_clusters), batch_size=int(batch_size), random_state=int(seed),
                         n_init=3, max_iter=100)
    km.fit(x)
    return KMeansTokenizer(km.cluster_centers_)
