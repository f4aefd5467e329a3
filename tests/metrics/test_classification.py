"""Classification metrics against brute-force loops and sklearn."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from parastyle.metrics.classification import classification_report


def _brute(y, p, c):
    cm = [[0] * c for _ in range(c)]
    for a, b in zip(y, p):
        cm[a][b] += 1
    recalls = [cm[k][k] / sum(cm[k]) for k in range(c) if sum(cm[k])]
    f1s = []
    for k in range(c):
        tp = cm[k][k]
        fp = sum(cm[j][k] for j in range(c)) - tp
        fn = sum(cm[k]) - tp
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return cm, sum(recalls) / len(recalls), sum(f1s) / len(f1s), sum(a == b for a, b in zip(y, p)) / len(y)


@pytest.mark.filterwarnings("ignore:y_pred contains classes")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_brute_force_and_sklearn(seed):
    rng = np.random.RandomState(seed)
    c = 5
    y = rng.randint(0, c - 1, size=60)          # class 4 never in the reference
    p = np.where(rng.rand(60) < 0.6, y, rng.randint(0, c, size=60))
    rep = classification_report(y, p, c)
    cm, uar, f1, acc = _brute(y.tolist(), p.tolist(), c)
    assert rep["confusion"] == cm and rep["n"] == 60
    assert rep["balanced_accuracy"] == pytest.approx(uar)
    assert rep["macro_f1"] == pytest.approx(f1)
    assert rep["accuracy"] == pytest.approx(acc)
    assert rep["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p))
    assert rep["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))


def test_bad_indices():
    with pytest.raises(ValueError, match="class indices"):
        classification_report([0, 3], [0, 1], 3)
