"""Task sampler: one task per batch, proportions by data volume / overridden weights, exact resume, DDP shards."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from parastyle.data.task_sampler import TaskBatchSampler


def corpus(seed=0):
    rng = random.Random(seed)
    tasks, lengths = [], []
    for t, n, lo, hi in (("asr", 300, 20, 60), ("tts", 150, 30, 90), ("lid", 60, 10, 30)):
        for _ in range(n):
            tasks.append(t)
            lengths.append(rng.randint(lo, hi))
    order = list(range(len(tasks)))
    rng.shuffle(order)
    return [tasks[i] for i in order], [lengths[i] for i in order]


def test_one_task_per_batch_and_budget():
    tasks, lengths = corpus()
    s = TaskBatchSampler(tasks, lengths, max_frames=400, batch_size=16, seed=1)
    batches = s.global_batches()
    assert len(batches) == s.num_batches()
    for b in batches:
        assert len({tasks[i] for i in b}) == 1
        assert len(b) <= 16 and len(b) * max(lengths[i] for i in b) <= 400 or len(b) == 1
    # a full epoch has as many draws as the task batch lists together
    per_task = {t: len(s._task_batches(t, 0, 0)) for t in s.task_names}
    assert len(batches) == sum(per_task.values())


def test_proportions_follow_data_volume_and_overrides():
    tasks, lengths = corpus()
    s = TaskBatchSampler(tasks, lengths, max_frames=400, seed=0)
    vol = {t: sum(l for l, x in zip(lengths, tasks) if x == t) for t in set(tasks)}
    assert s.weights == {t: float(v) for t, v in vol.items()}
    counts = Counter()
    total = 0
    for e in range(40):
        ts = s.epoch_tasks(e)
        counts.update(ts)
        total += len(ts)
    for t, v in vol.items():
        expected = v / sum(vol.values())
        assert abs(counts[t] / total - expected) < 0.03, (t, counts[t] / total, expected)
    # overridden weights: equal shares; weight 0 leaves the task out
    s2 = TaskBatchSampler(tasks, lengths, max_frames=400, weights={"asr": 1, "tts": 1, "lid": 0}, seed=0)
    c2 = Counter()
    for e in range(40):
        c2.update(s2.epoch_tasks(e))
    assert c2["lid"] == 0 and abs(c2["asr"] / (c2["asr"] + c2["tts"]) - 0.5) < 0.04
    for b in s2.global_batches():
        assert tasks[b[0]] != "lid"
    with pytest.raises(ValueError, match="only the tasks"):
        TaskBatchSampler(tasks, lengths, max_frames=400, weights={"gid": 1})
    with pytest.raises(ValueError, match="every task weight is 0"):
        TaskBatchSampler(tasks, lengths, max_frames=400, weights={"asr": 0, "tts": 0, "lid": 0})


def test_every_example_seen_within_a_cycle():
    """Batches of one task come from a reshuffled pass over its examples: the first cycle of each task
    covers each of its examples at most once."""
    tasks, lengths = corpus()
    s = TaskBatchSampler(tasks, lengths, max_frames=400, seed=2)
    for t in s.task_names:
        cycle0 = s._task_batches(t, 0, 0)
        flat = [i for b in cycle0 for i in b]
        assert sorted(flat) == sorted(i for i, x in enumerate(tasks) if x == t)


def test_deterministic_and_exact_resume():
    tasks, lengths = corpus()
    a = TaskBatchSampler(tasks, lengths, max_frames=300, seed=5)
    a.set_epoch(3)
    full = list(a)
    b = TaskBatchSampler(tasks, lengths, max_frames=300, seed=5)
    b.set_epoch(3)
    head = []
    for i, batch in enumerate(b):
        head.append(batch)
        if i == 6:
            break
    state = dict(b.state_dict(), position=7)
    c = TaskBatchSampler(tasks, lengths, max_frames=300, seed=5)
    c.load_state_dict(state)
    assert head + list(c) == full
    assert len(c) == len(full) - 7
    # other epochs differ; other weights refuse the state
    a.set_epoch(4)
    assert list(a) != full
    d = TaskBatchSampler(tasks, lengths, max_frames=300, seed=5, weights={"asr": 5.0})
    with pytest.raises(ValueError, match="other|written with task weights"):
        d.load_state_dict(state)
    d.load_state_dict({"epoch": 3, "position": 7})          # the trainer's {"epoch", "position"}


def test_ddp_shards_partition_global_batches():
    tasks, lengths = corpus()
    g = TaskBatchSampler(tasks, lengths, max_frames=400, batch_size=8, seed=0, world_size=1)
    ranks = [TaskBatchSampler(tasks, lengths, max_frames=400, batch_size=8, seed=0, rank=r, world_size=2)
             for r in range(2)]
    glob = ranks[0].global_batches()
    assert glob == ranks[1].global_batches()
    assert all(len(b) >= 2 for b in glob)
    r0, r1 = list(ranks[0]), list(ranks[1])
    assert len(r0) == len(r1) == len(glob)
    for b, x, y in zip(glob, r0, r1):
        assert x == b[0::2] and y == b[1::2] and len({tasks[i] for i in x + y}) == 1
    assert g.num_batches() > 0
