"""Deterministic, resumable batch streams for training.

SGDepth cycles every training loader endlessly and counts epochs in steps (spec §4.1). Here the whole stream is a
pure function of (seed, stream name, global batch number): pass k over a dataset of n samples is the permutation
``randperm(n)`` of a generator seeded from (seed, name, k), cut into ⌊n / (batch·world)⌋ global batches (the
reference's drop_last); process ``rank`` takes its own slice of each global batch. A run resumed at global batch g
therefore sees exactly the samples, in the same order, it would have seen without the interruption, for any number of
data-loader workers. Each sample index travels with its pass number, so augmentation can be seeded per (pass, index).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler


def derive_seed(*parts) -> int:
    """A stable 63-bit seed from any printable parts (no dependence on Python's salted hash)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class StreamBatchSampler(Sampler):
    """Endless batches of (index, pass) pairs, starting at global batch ``start``.

    Args:
        size: number of samples n; batch_size: per process; seed/name: what the order derives from;
        rank/world_size: this process's slice (DDP), start: the first global batch to yield.
    """

    def __init__(self, size: int, batch_size: int, seed: int, name: str, start: int = 0, rank: int = 0,
                 world_size: int = 1):
        global_batch = batch_size * world_size
        if size < global_batch:
            raise ValueError(f"{name}: {size} samples are fewer than one batch of {global_batch} "
                             f"({batch_size} per process × {world_size})")
        self.size, self.batch_size, self.seed, self.name = size, batch_size, seed, name
        self.start, self.rank, self.world_size = start, rank, world_size
        self.batches_per_pass = size // global_batch

    def permutation(self, pass_no: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.name, pass_no))
        return torch.randperm(self.size, generator=generator)

    def _take(self, perm: torch.Tensor, pass_no: int, within: int) -> list[tuple[int, int]]:
        first = (within * self.world_size + self.rank) * self.batch_size
        return [(int(i), pass_no) for i in perm[first:first + self.batch_size]]

    def batch(self, number: int) -> list[tuple[int, int]]:
        """This process's (index, pass) pairs of global batch ``number``."""
        pass_no, within = divmod(number, self.batches_per_pass)
        return self._take(self.permutation(pass_no), pass_no, within)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        number, cached_pass, perm = self.start, None, None
        while True:
            pass_no, within = divmod(number, self.batches_per_pass)
            if pass_no != cached_pass:
                cached_pass, perm = pass_no, self.permutation(pass_no)
            yield self._take(perm, pass_no, within)
            number += 1

    def __len__(self) -> int:  # endless; DataLoader only needs this for len(loader)
        return 2 ** 62


class SeededSamples(Dataset):
    """``dataset[index]`` followed by ``transform(sample, generator)``, the generator seeded from
    (seed, name, pass, index): augmentation is reproducible whatever worker loads the sample, and differs per pass."""

    def __init__(self, dataset, transform, seed: int, name: str):
        self.dataset, self.transform, self.seed, self.name = dataset, transform, seed, name

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, pass_no = key
        sample = self.dataset[index]
        if self.transform is None:
            return sample
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.name, pass_no, index))
        return self.transform(sample, generator)
