"""An endless, shuffled, resumable sampler that splits one global stream of indices across ranks."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from stylegan.core.misc import derive_seed


class InfiniteSampler(torch.utils.data.Sampler):
    """Yields dataset indices forever, from one global stream that does not depend on the number of ranks.

    The global stream is epoch after epoch: position p holds item p % dataset_size of epoch p // dataset_size,
    and each epoch is a fresh permutation seeded by (seed, epoch) (or 0, 1, 2, ... with shuffle=False), so
    every image is seen once per epoch.

    Rank r yields the positions p >= start_index with p % world_size == r, in order. A training step with
    batch_gpu images per rank therefore consumes the consecutive positions [n, n + batch_gpu * world_size)
    between all ranks, with no index shared by two ranks.

    Resuming: if the ranks together have consumed N images (training's `nimg`), a new sampler with
    start_index=N continues the identical global stream, whatever the number of ranks before and after:

        sampler = InfiniteSampler(len(dataset), rank, world_size, seed, start_index=nimg)
        loader = DataLoader(dataset, batch_size=batch_gpu, sampler=sampler, num_workers=3)

    Images prefetched by the old DataLoader but not trained on are drawn again, which is what makes the
    continuation exact.
    """

    def __init__(self,
                 dataset_size: int,                 # number of items, len(dataset)
                 rank: int = 0,                     # this process's rank
                 world_size: int = 1,               # number of ranks
                 seed: int = 0,                     # picks the per-epoch permutations
                 shuffle: bool = True,              # False walks 0, 1, 2, ... each epoch
                 start_index: int = 0,              # global position to start at: images consumed so far
                 ):
        if dataset_size < 1:
            raise ValueError(f"InfiniteSampler needs a non-empty dataset, got dataset_size={dataset_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"InfiniteSampler: rank {rank} is outside world_size {world_size}")
        if start_index < 0:
            raise ValueError(f"InfiniteSampler: start_index must be >= 0, got {start_index}")
        self.dataset_size = dataset_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle = shuffle
        self.start_index = start_index

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The dataset indices of one epoch, in stream order."""
        if not self.shuffle:
            return np.arange(self.dataset_size)
        return np.random.default_rng(derive_seed(self.seed, epoch)).permutation(self.dataset_size)

    def index_at(self, position: int) -> int:
        """The dataset index at a global stream position."""
        epoch, offset = divmod(position, self.dataset_size)
        return int(self.epoch_order(epoch)[offset])

    def __iter__(self) -> Iterator[int]:
        # The first position >= start_index that belongs to this rank.
        position = self.start_index + (self.rank - self.start_index) % self.world_size
        epoch, order = -1, None
        while True:
            e, offset = divmod(position, self.dataset_size)
            if e != epoch:
                epoch, order = e, self.epoch_order(e)
            yield int(order[offset])
            position += self.world_size
