"""Batch samplers: length buckets under a frame budget, shuffled by seed + epoch, resumable, DDP-sharded.

:class:`LengthBucketBatchSampler` builds *global* batches: utterances sorted by length (ties
broken randomly per epoch) are cut greedily into batches whose padded size
``len(batch) * max(length)`` stays within ``max_frames`` and whose size stays within
``batch_size``; the batch order is then shuffled with ``seed + epoch``. Under DDP every rank
builds the same global batches and takes the disjoint slice ``batch[rank::world_size]``, so
the union over ranks of one step is exactly the global batch (the budget is global: results
do not depend on the number of processes).

Resuming: ``state_dict()`` returns ``{"epoch", "position"}`` where ``position`` is the number
of global batches of that epoch already consumed; iteration after ``load_state_dict`` starts
there. The trainer sets ``position`` from the batches it really consumed (a DataLoader may
prefetch ahead of consumption).
"""
from __future__ import annotations

import logging
import random
from typing import Dict, Iterator, List, Optional, Sequence

logger = logging.getLogger(__name__)


def length_bucket_batches(lengths: Sequence[int], max_frames: Optional[int] = None,
                          batch_size: Optional[int] = None, seed: int = 0, epoch: int = 0,
                          shuffle: bool = True, min_batch_size: int = 1) -> List[List[int]]:
    """Group indices ``0..N-1`` into batches by length.

    Args:
        lengths: frames per utterance ``(N,)``.
        max_frames: bound on ``len(batch) * max(lengths in batch)``; an utterance longer than
            the budget forms a batch on its own.
        batch_size: bound on ``len(batch)``.
        seed, epoch: the random tie-breaking and batch order depend on ``seed + epoch`` only.
        shuffle: False keeps length order (validation / scoring).
        min_batch_size: batches with fewer utterances are left out (DDP needs one per rank).
    Returns:
        list of index lists, every index at most once.
    """
    if max_frames is None and batch_size is None:
        raise ValueError("length_bucket_batches needs max_frames and/or batch_size")
    rng = random.Random(seed * 100003 + epoch)
    order = list(range(len(lengths)))
    if shuffle:
        keys = [rng.random() for _ in order]
        order.sort(key=lambda i: (lengths[i], keys[i]))
    else:
        order.sort(key=lambda i: (lengths[i], i))
    batches: List[List[int]] = []
    cur: List[int] = []
    cur_max = 0
    for i in order:
        new_max = max(cur_max, int(lengths[i]))
        over_frames = max_frames is not None and (len(cur) + 1) * new_max > max_frames
        over_count = batch_size is not None and len(cur) + 1 > batch_size
        if cur and (over_frames or over_count):
            batches.append(cur)
            cur, new_max = [], int(lengths[i])
        cur.append(i)
        cur_max = new_max
    if cur:
        batches.append(cur)
    kept = [b for b in batches if len(b) >= min_batch_size]
    if len(kept) < len(batches):
        dropped = sum(len(b) for b in batches if len(b) < min_batch_size)
        logger.warning("left out %d batch(es) (%d utterances) smaller than %d utterances "
                       "(one per process is needed)", len(batches) - len(kept), dropped, min_batch_size)
    if shuffle:
        rng.shuffle(kept)
    return kept


class ShardedGlobalBatches:
    """Iteration shared by the batch samplers: a subclass defines ``global_batches()`` (the epoch's
    global batches of dataset indices) and holds ``position``, ``rank``, ``world_size``; rank ``r``
    gets ``global_batch[r::world_size]`` of every batch from ``position`` on (empty parts skipped)."""

    def __iter__(self) -> Iterator[List[int]]:
        for batch in self.global_batches()[self.position:]:
            local = batch[self.rank::self.world_size]
            if local:
                yield local

    def __len__(self) -> int:
        """Number of local batches left in the current epoch from ``position``."""
        return sum(1 for b in self.global_batches()[self.position:] if b[self.rank::self.world_size])

    def num_batches(self) -> int:
        """Global batches in a full epoch."""
        return len(self.global_batches())


class LengthBucketBatchSampler(ShardedGlobalBatches):
    """Length-bucketed batch sampler yielding this rank's part of each global batch.

    Args:
        lengths: frames per utterance (after any crop).
        max_frames, batch_size: global batch limits (see :func:`length_bucket_batches`).
        shuffle: shuffle batch order and tie-breaking by ``seed + epoch``.
        rank, world_size: DDP position; rank ``r`` gets ``global_batch[r::world_size]``.
        drop_small: in training, leave out global batches with fewer than ``world_size``
            utterances (every rank needs a non-empty batch to synchronise gradients). When False
            (evaluation), a rank may receive empty batches, which are skipped.
    """

    def __init__(self, lengths: Sequence[int], max_frames: Optional[int] = None,
                 batch_size: Optional[int] = None, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1, drop_small: bool = True):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.lengths = [int(x) for x in lengths]
        self.max_frames, self.batch_size = max_frames, batch_size
        self.shuffle, self.seed = shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.drop_small = drop_small
        self.epoch = 0
        self.position = 0
        self._cache_epoch: Optional[int] = None
        self._cache: List[List[int]] = []

    def global_batches(self, epoch: Optional[int] = None) -> List[List[int]]:
        """The global batches of ``epoch`` (default: the current one), identical on every rank."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache_epoch != epoch:
            self._cache = length_bucket_batches(
                self.lengths, self.max_frames, self.batch_size, self.seed, epoch, self.shuffle,
                min_batch_size=self.world_size if self.drop_small else 1)
            self._cache_epoch = epoch
        return self._cache

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch."""
        self.epoch, self.position = int(epoch), 0

    def state_dict(self) -> Dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

