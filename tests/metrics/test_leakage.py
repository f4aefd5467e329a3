import numpy as np
import pytest

from parastyle.metrics.leakage import IGNORE_INDEX, balanced_accuracy, chance_levels, leakage_matrix


def synth(n, seed):
    """Subspace "emo" encodes emotion (3 classes) only, "gen" gender (2 classes) only, "mix" both."""
    rng = np.random.default_rng(seed)
    emo = rng.integers(0, 3, n)
    gen = rng.integers(0, 2, n)
    centers_e = np.eye(3, 6) * 4
    centers_g = np.eye(2, 6)[::-1] * 4
    embs = {"emo": centers_e[emo] + rng.normal(size=(n, 6)),
            "gen": centers_g[gen] + rng.normal(size=(n, 6)),
            "mix": np.concatenate([centers_e[emo], centers_g[gen]], 1) + rng.normal(size=(n, 12))}
    return embs, {"emotion": emo, "gender": gen}


def test_leakage_recovers_known_structure():
    xtr, ytr = synth(300, 0)
    xte, yte = synth(200, 1)
    ytr["gender"][:50] = IGNORE_INDEX                     # unknown labels are left out
    m = leakage_matrix(xtr, ytr, xte, yte)
    assert m["emo"]["emotion"] > 0.95 and m["gen"]["gender"] > 0.95
    assert m["mix"]["emotion"] > 0.95 and m["mix"]["gender"] > 0.95
    assert abs(m["emo"]["gender"] - 0.5) < 0.1             # no gender in the emotion subspace: chance
    assert abs(m["gen"]["emotion"] - 1 / 3) < 0.1
    assert chance_levels(yte) == pytest.approx({"emotion": 1 / 3, "gender": 0.5})


def test_balanced_accuracy_brute_force():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(2)
    y, p = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    recalls = []
    for c in sorted(set(y.tolist())):
        idx = [i for i in range(50) if y[i] == c]
        recalls.append(sum(p[i] == c for i in idx) / len(idx))
    assert balanced_accuracy(y, p) == pytest.approx(sum(recalls) / len(recalls))
    assert balanced_accuracy(y, p) == pytest.approx(balanced_accuracy_score(y, p))


def test_undefined_entries_and_errors():
    xtr, ytr = synth(40, 0)
    xte, yte = synth(20, 1)
    ytr["gender"][:] = 1                                    # one class only: probe undefined
    yte["emotion"][:] = IGNORE_INDEX                        # nothing to score
    m = leakage_matrix(xtr, ytr, xte, yte)
    assert m["emo"]["gender"] is None and m["gen"]["emotion"] is None
    with pytest.raises(ValueError, match="labels"):
        leakage_matrix(xtr, {"emotion": ytr["emotion"][:10]}, xte, yte)
    with pytest.raises(KeyError, match="subspace"):
        leakage_matrix(xtr, ytr, {"emo": xte["emo"]}, yte)
