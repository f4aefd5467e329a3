"""Class-balanced sampler: weights formula, flatter tag distribution, seeding, resume, DDP shards."""
from collections import Counter

import pytest
import torch

from parastyle.data.balanced_sampler import NO_TAG, ClassBalancedBatchSampler, inverse_frequency_weights, tag_counts


def corpus():
    # 40 utterances: "common" on 30, "rare" on 4, "mid" on 10 (some overlap), 2 without tags
    tags = []
    for i in range(40):
        t = []
        if i < 30:
            t.append("common")
        if 30 <= i < 34:
            t.append("rare")
        if i % 4 == 0:
            t.append("mid")
        tags.append(t)
    tags[36] = []
    tags[37] = []
    return tags


def test_weights_brute_force():
    tags = [["a"], ["a", "b"], ["a"], []]
    # f_a = 3/4, f_b = 1/4, f_<none> = 1/4
    w = inverse_frequency_weights(tags)
    assert w.tolist() == pytest.approx([4 / 3, (4 / 3 + 4) / 2, 4 / 3, 4])
    w = inverse_frequency_weights(tags, reduce="max")
    assert w.tolist() == pytest.approx([4 / 3, 4, 4 / 3, 4])
    assert inverse_frequency_weights(tags, power=0.0).tolist() == [1, 1, 1, 1]


def _tag_share(tags, index_lists):
    c = Counter(m for idx in index_lists for i in idx for m in (tags[i] or ["<none>"]))
    total = sum(c.values())
    return {m: v / total for m, v in c.items()}


def test_flatter_than_uniform():
    tags = corpus()
    s = ClassBalancedBatchSampler(tags, batch_size=8, num_batches=200, seed=0)
    balanced = _tag_share(tags, list(s))
    g = torch.Generator().manual_seed(0)
    uniform = _tag_share(tags, [torch.randperm(40, generator=g)[:8].tolist() for _ in range(200)])
    spread = lambda d: max(d.values()) / min(d.values())
    assert spread(balanced) < 0.5 * spread(uniform)
    assert balanced["rare"] > 2 * uniform["rare"]


def test_seeded_and_resumable():
    tags = corpus()
    a = ClassBalancedBatchSampler(tags, batch_size=8, num_batches=6, seed=3)
    b = ClassBalancedBatchSampler(tags, batch_size=8, num_batches=6, seed=3)
    full = list(a)
    assert full == list(b)
    assert full != list(ClassBalancedBatchSampler(tags, batch_size=8, num_batches=6, seed=4))
    a.set_epoch(1)
    assert list(a) != full
    # resume in the middle of epoch 1
    b.load_state_dict({"epoch": 1, "position": 4})
    assert len(b) == 2 and list(b) == list(a)[4:]
    assert b.state_dict() == {"epoch": 1, "position": 4}


def test_ddp_shards_disjoint_and_cover_global_batch():
    tags = corpus()
    ranks = [ClassBalancedBatchSampler(tags, batch_size=8, num_batches=5, seed=1, rank=r, world_size=2)
             for r in range(2)]
    single = ClassBalancedBatchSampler(tags, batch_size=8, num_batches=5, seed=1)
    for step, (b0, b1, g) in enumerate(zip(*ranks, single)):
        assert len(b0) == len(b1) == 4
        assert not set(b0) & set(b1)
        assert sorted(b0 + b1) == sorted(g) and len(set(g)) == 8
    with pytest.raises(ValueError):
        ClassBalancedBatchSampler(tags, batch_size=1, world_size=2)


def test_tag_counts_and_arguments():
    tags = [["a", "a"], ["a", "b"], []]
    assert tag_counts(tags) == Counter({"a": 2, "b": 1, NO_TAG: 1})     # a tag counts once per utterance
    s = ClassBalancedBatchSampler(tags, batch_size=2, power=0.5, reduce="max")
    assert s.tag_counts == tag_counts(tags) and (s.power, s.reduce) == (0.5, "max")
    assert s.num_batches() == 1 and len(s) == 1                          # N // batch_size
    with pytest.raises(ValueError, match="num_batches"):
        ClassBalancedBatchSampler(tags, batch_size=2, num_batches=0)
    with pytest.raises(ValueError, match="batch_size"):
        ClassBalancedBatchSampler(tags, batch_size=4)
    with pytest.raises(ValueError, match="reduce"):
        ClassBalancedBatchSampler(tags, batch_size=2, reduce="sum")
