"""Class-balanced batch sampler by inverse tag frequency (ParaSpeechCLAP, intrinsic variant).

Utterance weights. With ``N`` utterances, ``n_m`` = number of utterances carrying tag ``m``
(an utterance without any tag counts under a pseudo-tag ``<none>``), and ``T(u)`` the tags of
utterance ``u``::

    f_m = n_m / N                                  (tag frequency)
    w_u = ( 1/|T(u)| sum_{m in T(u)} f_m^(-alpha) )     reduce="mean" (default)
    w_u = max_{m in T(u)} f_m^(-alpha)                  reduce="max"
    p_u = w_u / sum_v w_v

``alpha`` = ``power`` (1 = plain inverse frequency, 0 = uniform). Utterances carrying rare tags are
drawn more often, so the tag distribution seen in training is flatter than the corpus's.

Batches. Global batch ``b`` of epoch ``e`` holds ``batch_size`` distinct utterances drawn from
``p`` without replacement, with a generator seeded by ``(seed, e, b)`` only; hence a batch does not
depend on where iteration started and resuming is exact. Under DDP every rank builds the same
global batch and takes ``batch[rank::world_size]``: the ranks' parts of one step are disjoint
(no utterance twice in one step) and their union is the global batch.

Training configs select it with ``data.sampler.name: class_balanced`` (see
:func:`parastyle.train.build.build_train_sampler`). The interface mirrors
:class:`parastyle.data.samplers.LengthBucketBatchSampler`, which is what the trainer uses for exact
resume: ``set_epoch``, ``state_dict() -> {"epoch", "position"}``, ``load_state_dict``, ``__iter__``
over local batches, ``__len__``, ``num_batches()`` (global batches per epoch, equal on every rank).
"""
from __future__ import annotations

from collections import Counter
from typing import Dict, Iterator, List, Optional, Sequence

import torch

NO_TAG = "<none>"


def tag_counts(tags: Sequence[Sequence[str]]) -> Counter:
    """``n_m``: number of utterances carrying tag ``m`` (untagged ones under :data:`NO_TAG`)."""
    return Counter(m for t in tags for m in (sorted(set(t)) or [NO_TAG]))


def inverse_frequency_weights(tags: Sequence[Sequence[str]], power: float = 1.0,
                              reduce: str = "mean") -> torch.Tensor:
    """Per-utterance sampling weights ``(N,)`` float64 from the formula in the module docstring."""
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    n = len(tags)
    if n == 0:
        raise ValueError("inverse_frequency_weights: no utterance")
    sets = [sorted(set(t)) or [NO_TAG] for t in tags]
    counts = tag_counts(tags)
    inv = {m: (c / n) ** (-power) for m, c in counts.items()}
    w = [(sum(inv[m] for m in s) / len(s)) if reduce == "mean" else max(inv[m] for m in s) for s in sets]
    return torch.tensor(w, dtype=torch.float64)


class ClassBalancedBatchSampler:
    """Batches drawn with probability proportional to :func:`inverse_frequency_weights`.

    Args:
        tags: per-utterance tag lists, index = dataset index (an empty list counts under
            :data:`NO_TAG`; the training builder refuses untagged utterances unless configured).
        batch_size: global batch size (split over ranks).
        num_batches: global batches per epoch (default ``N // batch_size``).
        power, reduce: weight formula (module docstring).
        seed: batches depend only on ``(seed, epoch, batch index)``.
        rank, world_size: DDP position; rank ``r`` gets ``global_batch[r::world_size]``.
    """

    def __init__(self, tags: Sequence[Sequence[str]], batch_size: int, num_batches: Optional[int] = None,
                 power: float = 1.0, reduce: str = "mean", seed: int = 0, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        n = len(tags)
        if not world_size <= batch_size <= n:
            raise ValueError(f"batch_size must be in [world_size={world_size}, N={n}], got {batch_size}")
        if num_batches is not None and int(num_batches) < 1:
            raise ValueError(f"num_batches must be >= 1, got {num_batches}")
        self.power, self.reduce = float(power), reduce
        self.tag_counts = tag_counts(tags)
        self.weights = inverse_frequency_weights(tags, power, reduce)
        self.probs = self.weights / self.weights.sum()
        self.batch_size = int(batch_size)
        self._num_batches = int(num_batches) if num_batches is not None else max(1, n // batch_size)
        self.seed = int(seed)
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.position = 0

    def global_batch(self, epoch: int, index: int) -> List[int]:
        """Global batch ``index`` of ``epoch``: ``batch_size`` distinct dataset indices."""
        g = torch.Generator()
        g.manual_seed((self.seed * 1_000_003 + epoch) * 1_000_033 + index)
        return torch.multinomial(self.probs, self.batch_size, replacement=False, generator=g).tolist()

    def global_batches(self, epoch: Optional[int] = None) -> List[List[int]]:
        epoch = self.epoch if epoch is None else epoch
        return [self.global_batch(epoch, b) for b in range(self._num_batches)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = int(epoch), 0

    def state_dict(self) -> Dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def __iter__(self) -> Iterator[List[int]]:
        for b in range(self.position, self._num_batches):
            yield self.global_batch(self.epoch, b)[self.rank::self.world_size]

    def __len__(self) -> int:
        return self._num_batches - self.position

    def num_batches(self) -> int:
        return self._num_batches
