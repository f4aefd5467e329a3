"""Multitask batch sampler: every global batch holds examples of ONE task, the task drawn at random
with probability proportional to its data volume (PolySpeech's multitask optimisation).

Each task's examples are cut into length buckets exactly like
:func:`parastyle.data.samplers.length_bucket_batches` (budget ``max_frames`` and/or
``batch_size``). One epoch is ``sum over tasks of the task's number of batches`` draws; draw ``j``
picks task ``k`` with probability ``w_k / sum(w)`` and takes the next batch of that task's
shuffled batch list; a task whose list is used up starts a new cycle of it (reshuffled). The
weights default to the data volume of each task (the summed lengths of its examples, i.e. the
positions a batch budget counts); ``weights`` overrides them (``{task: weight}``; 0 leaves a task
out of training). Everything is a function of ``(seed, epoch)``: the batches of an epoch are
identical on every rank and on a rerun.

DDP: every rank draws the same global batch and takes ``batch[rank::world_size]``; global
batches with fewer than ``world_size`` examples are left out of the bucketing (counted in the log).

Resume: ``state_dict()`` -> ``{"epoch", "position", "weights"}`` (``position`` = global batches of
the epoch already consumed, set by the trainer); ``load_state_dict`` restores epoch and position
and refuses a state written with other task weights.
"""
from __future__ import annotations

import logging
import random
from typing import Dict, Iterator, List, Mapping, Optional, Sequence

from parastyle.data.samplers import ShardedGlobalBatches, length_bucket_batches

logger = logging.getLogger(__name__)


class TaskBatchSampler(ShardedGlobalBatches):
    """One-task-per-batch sampler.

    Args:
        tasks: task name of every dataset index ``(N,)``.
        lengths: length (positions) of every index ``(N,)``.
        max_frames, batch_size: global batch limits of the length buckets.
        weights: ``{task: weight}`` overriding the data-volume weights (tasks not named keep
            their volume weight); None = data volume.
        seed, rank, world_size: as in :class:`parastyle.data.samplers.LengthBucketBatchSampler`.
    """

    def __init__(self, tasks: Sequence[str], lengths: Sequence[int], max_frames: Optional[int] = None,
                 batch_size: Optional[int] = None, weights: Optional[Mapping[str, float]] = None,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        if len(tasks) != len(lengths):
            raise ValueError(f"{len(tasks)} task names but {len(lengths)} lengths")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        if max_frames is None and batch_size is None:
            raise ValueError("the task sampler needs max_frames and/or batch_size")
        self.max_frames, self.batch_size = max_frames, batch_size
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.task_names: List[str] = sorted(set(tasks))
        if not self.task_names:
            raise ValueError("no example to sample from")
        self.indices: Dict[str, List[int]] = {t: [] for t in self.task_names}
        for i, t in enumerate(tasks):
            self.indices[t].append(i)
        self.lengths = [int(x) for x in lengths]
        volume = {t: float(sum(self.lengths[i] for i in idx)) for t, idx in self.indices.items()}
        w = dict(volume)
        for t, v in (weights or {}).items():
            if t not in w:
                raise ValueError(f"task weight for {t!r}, but the data has only the tasks {self.task_names}")
            if float(v) < 0:
                raise ValueError(f"task weight of {t!r} is negative ({v})")
            w[t] = float(v)
        if sum(w.values()) <= 0:
            raise ValueError(f"every task weight is 0: {w}")
        self.weights = {t: w[t] for t in self.task_names}
        self.epoch, self.position = 0, 0
        self._cache_epoch: Optional[int] = None
        self._cache: List[List[int]] = []

    # ------------------------------------------------------------------ batches
    def _task_batches(self, task: str, epoch: int, cycle: int) -> List[List[int]]:
        idx = self.indices[task]
        local = length_bucket_batches([self.lengths[i] for i in idx], self.max_frames, self.batch_size,
                                      seed=self.seed * 7919 + self.task_names.index(task),
                                      epoch=epoch * 1000 + cycle, shuffle=True,
                                      min_batch_size=self.world_size)
        return [[idx[j] for j in b] for b in local]

    def epoch_tasks(self, epoch: Optional[int] = None) -> List[str]:
        """The task of every global batch of ``epoch``."""
        epoch = self.epoch if epoch is None else epoch
        rng = random.Random(self.seed * 1000003 + epoch)
        live = [t for t in self.task_names if self.weights[t] > 0]
        n = sum(len(self._task_batches(t, epoch, 0)) for t in live)
        return rng.choices(live, weights=[self.weights[t] for t in live], k=n)

    def global_batches(self, epoch: Optional[int] = None) -> List[List[int]]:
        """The global batches of ``epoch`` (default: the current one), identical on every rank."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache_epoch == epoch:
            return self._cache
        pools: Dict[str, List[List[int]]] = {}
        cycles: Dict[str, int] = {}
        out: List[List[int]] = []
        for t in self.epoch_tasks(epoch):
            if not pools.get(t):
                c = cycles.get(t, -1) + 1
                cycles[t] = c
                pools[t] = self._task_batches(t, epoch, c)
                if not pools[t]:
                    raise ValueError(f"task {t!r} has no batch of at least {self.world_size} example(s)")
                pools[t] = pools[t][::-1]          # pop() from the end = list order
            out.append(pools[t].pop())
        self._cache, self._cache_epoch = out, epoch
        return out

    # ------------------------------------------------------------------ sampler protocol
    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = int(epoch), 0

    def state_dict(self) -> Dict[str, object]:
        return {"epoch": self.epoch, "position": self.position, "weights": dict(self.weights)}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        if "weights" in state and dict(state["weights"]) != self.weights:
            raise ValueError(f"task sampler state was written with task weights {state['weights']}, "
                             f"now {self.weights}: resuming would not continue the same run")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

