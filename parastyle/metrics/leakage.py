"""Leakage matrix: how much each embedding subspace reveals about each factor.

For a subspace ``s`` and a factor ``f``, a linear probe (multinomial logistic regression on
standardised features) is trained on the train embeddings of ``s`` to predict ``f`` and scored by
balanced accuracy (mean per-class recall, chance = 1 / #classes) on the test embeddings. A
disentangled model has a high diagonal (``s = f``) and near-chance off-diagonal entries.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np

IGNORE_INDEX = -100


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over the classes present in ``y_true`` of the recall of that class."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.unique(y_true)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes]))


def probe_balanced_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                            C: float = 1.0, max_iter: int = 1000, seed: int = 0) -> Optional[float]:
    """Train a linear probe on ``x_train (N, D)`` / ``y_train (N,)``, return balanced accuracy on the test set.

    Rows labelled ``IGNORE_INDEX`` are left out. Returns None when the train set has fewer than two
    classes or the test set has no labelled row (the probe is then undefined).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tr, te = y_train != IGNORE_INDEX, y_test != IGNORE_INDEX
    if len(np.unique(y_train[tr])) < 2 or not te.any():
        return None
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))
    clf.fit(x_train[tr], y_train[tr])
    return balanced_accuracy(y_test[te], clf.predict(x_test[te]))


def leakage_matrix(train_embs: Mapping[str, np.ndarray], train_labels: Mapping[str, np.ndarray],
                   test_embs: Mapping[str, np.ndarray], test_labels: Mapping[str, np.ndarray],
                   C: float = 1.0, max_iter: int = 1000, seed: int = 0) -> Dict[str, Dict[str, Optional[float]]]:
    """``{subspace: (N, D)}`` embeddings and ``{factor: (N,)}`` int labels (-100 = unknown) for train and
    test -> ``{subspace: {factor: balanced accuracy or None}}``."""
    from threadpoolctl import threadpool_limits

    out: Dict[str, Dict[str, Optional[float]]] = {}
    # Single-threaded BLAS: next to torch's OpenMP pool, multi-threaded BLAS in lbfgs can spin and
    # slow the small probes down by orders of magnitude.
    with threadpool_limits(limits=1):
        _fill(out, train_embs, train_labels, test_embs, test_labels, C, max_iter, seed)
    return out


def _fill(out, train_embs, train_labels, test_embs, test_labels, C, max_iter, seed) -> None:
    for s in train_embs:
        if s not in test_embs:
            raise KeyError(f"leakage_matrix: subspace {s!r} missing from the test embeddings")
        xtr, xte = np.asarray(train_embs[s], dtype=np.float64), np.asarray(test_embs[s], dtype=np.float64)
        out[s] = {}
        for f in train_labels:
            if f not in test_labels:
                raise KeyError(f"leakage_matrix: factor {f!r} missing from the test labels")
            ytr, yte = np.asarray(train_labels[f]), np.asarray(test_labels[f])
            if len(ytr) != len(xtr) or len(yte) != len(xte):
                raise ValueError(f"leakage_matrix: {s}/{f}: {len(xtr)} train embeddings vs {len(ytr)} labels, "
                                 f"{len(xte)} test embeddings vs {len(yte)} labels")
            out[s][f] = probe_balanced_accuracy(xtr, ytr, xte, yte, C=C, max_iter=max_iter, seed=seed)


def chance_levels(test_labels: Mapping[str, np.ndarray]) -> Dict[str, float]:
    """Balanced-accuracy chance level of each factor: 1 / number of classes present in the test labels."""
    out = {}
    for f, y in test_labels.items():
        y = np.asarray(y)
        n = len(np.unique(y[y != IGNORE_INDEX]))
        out[f] = 1.0 / n if n else float("nan")
    return out
