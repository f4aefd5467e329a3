"""Classification metrics over integer class indices.

With ``y`` the reference and ``p`` the prediction over classes ``0..C-1``:

- accuracy          = mean(p_i == y_i)
- balanced accuracy = unweighted average recall (UAR) = mean over classes c present in y of
  |{i: y_i = c, p_i = c}| / |{i: y_i = c}|
- macro F1          = mean over classes c present in y or p of 2 TP_c / (2 TP_c + FP_c + FN_c)
  (the convention of ``sklearn.metrics.f1_score(average="macro")``)
- confusion[c, k]   = |{i: y_i = c, p_i = k}| (rows: reference, columns: prediction)
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts, rows = reference class, columns = predicted class."""
    y, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y.shape != p.shape:
        raise ValueError(f"y_true {y.shape} and y_pred {p.shape} differ in shape")
    if y.size and (y.min() < 0 or p.min() < 0 or y.max() >= num_classes or p.max() >= num_classes):
        raise ValueError(f"class indices must be in [0, {num_classes})")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    return cm


def accuracy(cm: np.ndarray) -> float:
    n = cm.sum()
    return float(np.trace(cm) / n) if n else float("nan")


def balanced_accuracy(cm: np.ndarray) -> float:
    """UAR: mean recall over the classes that occur in the reference."""
    support = cm.sum(1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def macro_f1(cm: np.ndarray) -> float:
    """Mean F1 over classes present in the reference or the prediction."""
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    present = (cm.sum(1) + cm.sum(0)) > 0
    if not present.any():
        return float("nan")
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-300), 0.0)
    return float(np.mean(f1[present]))


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> Dict[str, object]:
    """``{"balanced_accuracy", "macro_f1", "accuracy", "n", "confusion"}`` (confusion as a nested list)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    return {"balanced_accuracy": balanced_accuracy(cm), "macro_f1": macro_f1(cm), "accuracy": accuracy(cm),
            "n": int(cm.sum()), "confusion": cm.tolist()}
