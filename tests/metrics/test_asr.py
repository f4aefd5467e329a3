import random

import pytest
import torch

from parastyle.metrics.asr import cer, ctc_collapse, ctc_greedy_decode, edit_errors, wer


def _levenshtein(a, b):
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


def test_collapse_and_greedy():
    assert ctc_collapse([1, 1, 0, 1, 2, 2, 0, 0, 3]) == [1, 1, 2, 3]
    assert ctc_collapse([0, 0]) == []
    assert ctc_collapse([2, 2, 2], blank=2) == []
    path = [[3, 3, 0, 3, 1], [2, 0, 2, 2, 0]]
    lp = torch.full((2, 5, 4), -10.0)
    for b, p in enumerate(path):
        for t, i in enumerate(p):
            lp[b, t, i] = 0.0
    assert ctc_greedy_decode(lp, torch.tensor([5, 3])) == [[3, 3, 1], [2, 2]]


def test_error_rates_vs_dp():
    rng = random.Random(0)
    refs = ["".join(rng.choice("ab c") for _ in range(rng.randint(1, 12))).strip() or "a" for _ in range(20)]
    hyps = ["".join(rng.choice("abc ") for _ in range(rng.randint(0, 12))) for _ in range(20)]
    e = sum(_levenshtein(list(r), list(h)) for r, h in zip(refs, hyps))
    assert cer(refs, hyps) == pytest.approx(e / sum(len(r) for r in refs))
    ew = sum(_levenshtein(r.split(), h.split()) for r, h in zip(refs, hyps))
    assert wer(refs, hyps) == pytest.approx(ew / sum(len(r.split()) for r in refs))
    assert wer(["the cat sat"], ["the cat sat"]) == 0.0
    assert wer(["the cat sat"], ["a cat"]) == pytest.approx(2 / 3)
    assert edit_errors([[1, 2, 3]], [[1, 3]]) == {"errors": 1, "ref_len": 3}
    with pytest.raises(ValueError):
        cer(["a"], [])
