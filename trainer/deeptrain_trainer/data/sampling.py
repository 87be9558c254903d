"""Which training records each rank sees in an epoch, resumable mid-epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """This rank's record indices for one epoch.

    An epoch is `num_items_per_epoch` items (0: the dataset size): larger than the dataset, it goes
    through fresh permutations one after another; smaller, it takes a prefix of one permutation.
    The epoch is padded by wrapping around to a multiple of `world_size` and dealt out round-robin,
    so every rank gets the same number of items (as DistributedSampler does). The order depends only
    on (seed, epoch), so every rank agrees on it without talking to the others.

    Resume: `set_epoch(e)` then `set_start(n)` skips the first n items of this rank's share, so the
    run continues at exactly the item it would have seen next. `set_epoch` clears the start.
    """

    def __init__(self, num_records: int, *, num_items_per_epoch: int, rank: int, world_size: int,
                 seed: int, shuffle: bool = True) -> None:
        if num_records <= 0:
            raise ValueError("EpochSampler needs at least one record")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        if num_items_per_epoch < 0:
            raise ValueError("num_items_per_epoch must be >= 0")
        self.num_records = num_records
        self.items_per_epoch = num_items_per_epoch or num_records
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.start = 0

    @property
    def items_per_rank(self) -> int:
        return math.ceil(self.items_per_epoch / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.start = 0

    def set_start(self, index: int) -> None:
        if not 0 <= index <= self.items_per_rank:
            raise ValueError(f"start {index} is not in [0, {self.items_per_rank}]")
        self.start = index

    def epoch_order(self) -> np.ndarray:
        """All ranks' items for this epoch, before dealing, padded to a multiple of world_size."""
        cycles = math.ceil(self.items_per_epoch / self.num_records)
        parts = [np.random.default_rng([self.seed, self.epoch, cycle]).permutation(self.num_records)
                 if self.shuffle else np.arange(self.num_records) for cycle in range(cycles)]
        order = np.concatenate(parts)[: self.items_per_epoch]
        padding = self.items_per_rank * self.world_size - len(order)
        return np.concatenate([order, np.resize(order, padding)]) if padding else order

    def __iter__(self) -> Iterator[int]:
        mine = self.epoch_order()[self.rank :: self.world_size]
        return iter(mine[self.start :].tolist())

    def __len__(self) -> int:
        return self.items_per_rank - self.start
