"""Dependence between categorical factors: Cramér's V from a contingency table."""
from __future__ import annotations

import itertools
from typing import Dict, Optional, Sequence

import numpy as np


def contingency_table(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Counts ``(R, C)`` of value pairs; rows = sorted values of ``a``, columns = sorted values of ``b``."""
    if len(a) != len(b):
        raise ValueError(f"sequences differ in length: {len(a)} vs {len(b)}")
    ra = {v: i for i, v in enumerate(sorted(set(a)))}
    rb = {v: i for i, v in enumerate(sorted(set(b)))}
    table = np.zeros((len(ra), len(rb)), dtype=np.int64)
    np.add.at(table, (np.array([ra[x] for x in a], dtype=np.int64),
                      np.array([rb[x] for x in b], dtype=np.int64)), 1)
    return table


def cramers_v(a: Sequence[str], b: Sequence[str]) -> Optional[float]:
    """Cramér's V between two categorical sequences of equal length ``N``.

    V = sqrt(chi2 / (N * (min(R, C) - 1))), chi2 = sum_ij (O_ij - E_ij)^2 / E_ij,
    E_ij = row_i * col_j / N (no continuity correction). 0 = independent in the sample,
    1 = one determines the other. ``None`` when either factor takes a single value (undefined).
    """
    table = contingency_table(a, b).astype(np.float64)
    n = table.sum()
    r, c = table.shape
    if n == 0 or min(r, c) < 2:
        return None
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / (n * (min(r, c) - 1))))


def pairwise_cramers_v(factors: Dict[str, Sequence[str]]) -> Dict[str, Optional[float]]:
    """Cramér's V for every pair of factors, keyed ``"<f1>~<f2>"`` in the given factor order."""
    return {f"{f1}~{f2}": (None if (v := cramers_v(factors[f1], factors[f2])) is None else round(v, 4))
            for f1, f2 in itertools.combinations(factors, 2)}
