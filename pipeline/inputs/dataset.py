"""Batches of (x, y, lengths, sample) straight from the Zarr cache, chunk-aware.

Reading 32 random samples decodes 32 chunks (measured ~1.4 k samples/s); reading whole chunks
in shuffled order runs at ~45 k samples/s. So an epoch shuffles the order of the chunks, reads
`buffer_chunks` of them (each decoded exactly once), shuffles the samples inside that buffer,
and carries fewer than a batch over to the next buffer: every sample once per epoch, memory
bounded by the buffer whatever the cache size; a batch mixes the clips of at most
`buffer_chunks` chunks. A subset that fits comfortably in memory (every rank holding it) is
instead read once and held (`mode="memory"`, which `mode="auto"` picks by size): one shuffle of
the whole subset per epoch, its batches dealt to DDP ranks and DataLoader workers round-robin,
so every batch draws from every class however the cache is ordered. `mode="device"` (which
`auto` picks on a GPU the subset fits) holds it on the model's device instead and builds the
same batches there, with no worker processes. Both build batches with
`pipeline.inputs.batch`, in torch.

The Zarr array is opened lazily in each process (main, DataLoader worker, DDP rank), never
pickled. When streaming, chunks are dealt to DDP ranks, then to DataLoader workers, round-robin.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from data_manifest.manifest import ARRAY_NAME
from pipeline import SkpipeError
from pipeline.data.cache import Cache, read_chunk
from pipeline.data.splits import read_splits
from pipeline.inputs import batch
from pipeline.inputs.loader import MODES, LoaderConfig

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # x, y, lengths, sample
# evaluation batches hold K clips per sample: x (B * K, T, V, C), lengths (B * K,), y and sample (B,)


class SkeletonDataset(IterableDataset[Batch]):
    """One epoch of batches per iteration; call `set_epoch` before each."""

    def __init__(self, cache: Cache, cfg: LoaderConfig) -> None:
        super().__init__()
        splits, meta = read_splits(cache)
        meta.protocol(cfg.split)  # refuses a name the cache does not have, listing those it has
        rows = splits[(splits["split"] == cfg.split) & (splits["subset"] == cfg.subset)]
        if rows.empty:
            raise SkpipeError(f"protocol {cfg.split} has no {cfg.subset} clips in {cache.directory} "
                              "(see `skpipe info`; `build-splits --val-fraction` sets val's size)")
        self.cfg = cfg
        self.cache = cache
        self.array_location = str(cache.path(ARRAY_NAME))
        spec = cache.manifest.array
        self.max_frames, self.chunk = int(spec["shape"][-3]), int(spec["chunks"][0])  # T of ([M,] T, V, C)
        if cfg.frames > self.max_frames:
            raise SkpipeError(f"--frames {cfg.frames} is more than the cache's {self.max_frames}")
        self.samples = np.sort(rows["sample"].to_numpy())  # (n,)
        index = cache.index.set_index("sample")
        self.labels = index.loc[self.samples, "label"].to_numpy(np.int64)
        self.valid = index.loc[self.samples, "valid_frames"].to_numpy(np.int64)
        self.itemsize = np.dtype(spec["dtype"]).itemsize
        self.device = torch.device(cfg.device)
        self.mode = self._mode(tuple(spec["shape"][1:]))
        self.epoch = 0
        self._arr: Any = None  # opened lazily, per process
        self._held: np.ndarray | None = None  # memory mode: (n, T, V, C) in the cache dtype
        self._resident: torch.Tensor | None = None  # device mode: (n, T, V, C) on `device`

    def _mode(self, row_shape: tuple[int, ...]) -> str:
        """`cfg.mode`, with `auto` resolved by size: on the device where it is a GPU the subset
        fits, else in memory where every rank can hold it, else streamed."""
        cfg, n = self.cfg, len(self.samples)
        on_device = batch.held_bytes(n, row_shape, self.itemsize, cfg.spec)
        if cfg.mode == "device" and not batch.fits(self.device, on_device * cfg.world, cfg.memory_limit):
            raise SkpipeError(f"--loader device: the {cfg.subset} subset ({on_device / 2**30:.1f} GiB "
                              f"held) does not fit on {self.device}; use --loader stream")
        if cfg.mode != "auto":
            return cfg.mode
        if self.device.type == "cuda" and batch.fits(self.device, on_device * cfg.world, 0):
            return "device"
        nbytes = n * math.prod(row_shape) * self.itemsize
        return "memory" if nbytes * cfg.world <= cfg.memory_limit else "stream"  # every rank holds it

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self.mode == "device":
            raise SkpipeError("--loader device builds batches on the device: use it without --workers")
        state["_arr"] = None  # each worker opens its own handle
        return state

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        """Batches this rank yields per epoch (streaming: exact with one worker; workers add
        partial batches)."""
        if self.mode in ("memory", "device"):
            return len(self.memory_batches())
        return math.ceil(len(self.my_samples()) / self.cfg.batch_size)

    def array(self) -> Any:
        if self._arr is None:
            import zarr

            self._arr = zarr.open_array(self.array_location, mode="r")
        return self._arr

    def chunks(self) -> np.ndarray:
        """Chunk ids holding at least one sample of the subset, in this epoch's order."""
        ids = np.unique(self.samples // self.chunk)
        if self.cfg.train:
            ids = np.random.default_rng([self.cfg.seed, self.epoch]).permutation(ids)
        return ids

    def my_chunks(self, worker: int = 0, workers: int = 1) -> np.ndarray:
        return self.chunks()[self.cfg.rank :: self.cfg.world][worker::workers]

    def my_samples(self) -> np.ndarray:
        """The samples this rank reads this epoch."""
        if self.mode in ("memory", "device"):
            batches = self.memory_batches()
            return np.sort(self.samples[np.concatenate(batches)]) if batches else self.samples[:0]
        mine = np.isin(self.samples // self.chunk, self.my_chunks())
        return self.samples[mine]

    def memory_batches(self) -> list[np.ndarray]:
        """This rank's batches this epoch (rows of `samples`): one permutation of the whole
        subset, the same in every rank and worker, cut into batches dealt round-robin. Every
        batch so draws from the whole subset, however the cache is ordered (real pickles are
        often sorted by class: one 64-clip chunk holds two to four of JHMDB's classes)."""
        rows = np.arange(len(self.samples))
        if self.cfg.train:
            rows = np.random.default_rng([self.cfg.seed, self.epoch]).permutation(rows)
        bs = self.cfg.batch_size
        return [rows[i : i + bs] for i in range(0, len(rows), bs)][self.cfg.rank :: self.cfg.world]

    def _read_chunk(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows (k, T, V, C) in the cache dtype, their sample ids) of the subset in chunk c."""
        lo = int(c) * self.chunk
        a, b = np.searchsorted(self.samples, [lo, lo + self.chunk])  # samples is sorted
        wanted = self.samples[a:b]
        block = read_chunk(self.cache, self.array(), int(c))  # (chunk, T, V, C): one chunk, checked
        return block[wanted - lo], wanted

    def _hold(self) -> np.ndarray:
        if self._held is None:
            parts = [self._read_chunk(c)[0] for c in np.unique(self.samples // self.chunk)]
            self._held = np.concatenate(parts)  # (n, T, V, C), rows in `samples` order
        return self._held

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = np.random.default_rng([self.cfg.seed, self.epoch, self.cfg.rank, worker, 1])
        if self.mode == "device":
            yield from self._iter_device(rng)
        elif self.mode == "memory":
            yield from self._iter_memory(rng, worker, workers)
        else:
            yield from self._iter_stream(rng, worker, workers)

    def _iter_memory(self, rng: np.random.Generator, worker: int, workers: int) -> Iterator[Batch]:
        held = self._hold()
        for r in self.memory_batches()[worker::workers]:  # DataLoader workers: batches dealt again
            yield self._batch(held[r], self.samples[r], rng)

    def _iter_device(self, rng: np.random.Generator) -> Iterator[Batch]:
        """The memory mode's batches, from the same draws of `rng`, built on the device."""
        if self._resident is None:
            self._resident = batch.hold(self._hold(), self.cfg.spec, self.device)
            self._held = None  # the host copy is no longer needed
        held, labels = self._resident, torch.from_numpy(self.labels).to(self.device)
        for r in self.memory_batches():
            rows = torch.from_numpy(r).to(self.device)
            if self.cfg.train:
                x, lengths = batch.from_rows(held[rows], self.valid[r], self.cfg.spec, rng)
            else:
                x, lengths = batch.clips_input(held[rows], self.valid[r], self.cfg.spec,
                                                  self.cfg.num_clips)
            yield x, labels[rows], lengths, torch.from_numpy(self.samples[r].astype(np.int64))

    def _iter_stream(self, rng: np.random.Generator, worker: int, workers: int) -> Iterator[Batch]:
        order = self.my_chunks(worker, workers)
        carry: tuple[np.ndarray, np.ndarray] | None = None
        bs = self.cfg.batch_size
        for g in range(0, len(order), self.cfg.buffer_chunks):
            parts = [self._read_chunk(c) for c in order[g : g + self.cfg.buffer_chunks]]
            if carry is not None:
                parts.insert(0, carry)
            x = np.concatenate([p[0] for p in parts])  # (k, T, V, C): the buffer
            s = np.concatenate([p[1] for p in parts])  # (k,)
            if self.cfg.train:
                perm = rng.permutation(len(s))
                x, s = x[perm], s[perm]
            full = len(s) // bs * bs
            for i in range(0, full, bs):
                yield self._batch(x[i : i + bs], s[i : i + bs], rng)
            carry = (x[full:], s[full:]) if full < len(s) else None
        if carry is not None:
            yield self._batch(carry[0], carry[1], rng)

    def _batch(self, rows: np.ndarray, samples: np.ndarray, rng: np.random.Generator) -> Batch:
        """Cache rows (B, [M,] 300, V, C) -> model input float32 and labels (B,): (B, [M,] frames,
        V, C) when training, (B * K, [M,] frames, V, C) with the K = num_clips clips of each
        sample folded into the batch when evaluating."""
        i = np.searchsorted(self.samples, samples)  # rows of these samples in self.samples
        x = torch.from_numpy(batch.normalized(rows, self.cfg.spec))
        if self.cfg.train:
            x, lengths = batch.from_rows(x, self.valid[i], self.cfg.spec, rng)
        else:
            x, lengths = batch.clips_input(x, self.valid[i], self.cfg.spec, self.cfg.num_clips)
        sample = torch.from_numpy(samples.astype(np.int64))
        return x.contiguous(), torch.from_numpy(self.labels[i]), lengths, sample

__all__ = ["MODES", "Batch", "LoaderConfig", "SkeletonDataset"]
