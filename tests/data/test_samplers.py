"""Length-bucket batch sampler: budget, no duplicates, DDP shards, resume position."""
from __future__ import annotations

import random

from parastyle.data.samplers import LengthBucketBatchSampler, length_bucket_batches


def _lengths(n=57, seed=0):
    rng = random.Random(seed)
    return [rng.randint(5, 60) for _ in range(n)]


def test_budget_and_coverage():
    lens = _lengths()
    batches = length_bucket_batches(lens, max_frames=150, batch_size=5, seed=1, epoch=0)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lens)))
    for b in batches:
        assert len(b) * max(lens[i] for i in b) <= 150 and len(b) <= 5
    # another epoch: different order, same coverage; same epoch: identical
    assert length_bucket_batches(lens, 150, 5, seed=1, epoch=0) == batches
    other = length_bucket_batches(lens, 150, 5, seed=1, epoch=1)
    assert other != batches and sorted(i for b in other for i in b) == sorted(flat)


def test_too_long_utterance_is_alone_and_eval_order():
    lens = [10, 500, 12, 11]
    batches = length_bucket_batches(lens, max_frames=40, shuffle=False)
    assert [1] in batches
    assert batches == [[0, 3, 2], [1]]


def test_ddp_shards_disjoint_and_complete():
    lens = _lengths(40)
    world = 3
    samplers = [LengthBucketBatchSampler(lens, max_frames=200, seed=4, rank=r, world_size=world) for r in range(world)]
    for s in samplers:
        s.set_epoch(2)
    per_rank = [list(s) for s in samplers]
    assert len({len(p) for p in per_rank}) == 1          # same number of steps on every rank
    global_batches = samplers[0].global_batches()
    for step, gb in enumerate(global_batches):
        parts = [per_rank[r][step] for r in range(world)]
        assert all(parts)
        assert sorted(i for p in parts for i in p) == sorted(gb)
    covered = sorted(i for p in per_rank for b in p for i in b)
    assert len(covered) == len(set(covered))
    # batches smaller than world size are left out of training only
    small = LengthBucketBatchSampler([5, 5, 5, 5, 100], max_frames=20, world_size=2, rank=0)
    assert all(len(b) >= 1 for b in small) and sum(len(b) for b in small.global_batches()) == 4


def test_resume_position():
    lens = _lengths(30)
    s = LengthBucketBatchSampler(lens, max_frames=120, seed=0)
    s.set_epoch(3)
    full = list(s)
    r = LengthBucketBatchSampler(lens, max_frames=120, seed=0)
    r.load_state_dict({"epoch": 3, "position": 4})
    assert list(r) == full[4:] and len(r) == len(full) - 4
    assert r.state_dict() == {"epoch": 3, "position": 4}
