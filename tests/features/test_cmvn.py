"""Global CMVN: Kaldi statistics against numpy, file round trip, normalisation, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from parastyle.features.cmvn import CMVNStats, GlobalCMVN, compute_stats, load_cmvn_stats
from parastyle.fileio import DataError


def test_stats_normalise_to_zero_mean_unit_variance(tmp_path):
    rng = np.random.RandomState(0)
    mats = [rng.randn(int(t), 5) * [1, 2, 3, 4, 5] + [10, -3, 0, 1, 7] for t in (7, 30, 1, 12)]
    stats = compute_stats(mats)
    allx = np.concatenate(mats)
    assert stats.count == allx.shape[0]
    assert np.allclose(stats.stats[0, :-1], allx.sum(0)) and np.allclose(stats.stats[1, :-1], (allx ** 2).sum(0))
    assert stats.stats[1, -1] == 0
    stats.save(tmp_path / "cmvn.ark")
    assert np.array_equal(load_cmvn_stats(tmp_path / "cmvn.ark"), stats.stats)
    cmvn = GlobalCMVN.from_file(tmp_path / "cmvn.ark")
    y = cmvn(torch.from_numpy(allx).float()).double().numpy()
    assert np.allclose(y.mean(0), 0, atol=1e-5) and np.allclose(y.std(0), 1, atol=1e-5)
    mean_only = GlobalCMVN.from_file(tmp_path / "cmvn.ark", norm_vars=False)
    assert np.allclose(mean_only(torch.from_numpy(allx).float()).numpy(), allx - allx.mean(0), atol=1e-4)


def test_constant_dimension_stays_finite_and_errors(tmp_path):
    stats = CMVNStats(2)
    stats.accumulate(np.array([[1.0, 5.0], [2.0, 5.0]]))
    y = GlobalCMVN.from_stats(stats.stats)(torch.tensor([[1.0, 5.0]]))
    assert torch.isfinite(y).all()
    with pytest.raises(DataError, match="dimension 2 but the features have 3"):
        GlobalCMVN.from_stats(stats.stats)(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="no frames"):
        CMVNStats(3).save(tmp_path / "empty.ark")
    assert not (tmp_path / "empty.ark").exists()
    with pytest.raises(DataError, match="not found"):
        load_cmvn_stats(tmp_path / "missing.ark")
    (tmp_path / "bad.ark").write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.ark"):
        load_cmvn_stats(tmp_path / "bad.ark")
