"""The chunk-aware loader: every sample once per epoch, bounded memory, frame sampling."""

import numpy as np
import pandas as pd
import pytest

from pipeline import SkpipeError
from pipeline.data.cache import IngestConfig, ingest, open_cache
from pipeline.data.splits import write_splits
from pipeline.inputs.dataset import LoaderConfig, SkeletonDataset
from pipeline.inputs.transforms import uniform_indices
from pipeline.source.synth import SynthConfig, write_synth


@pytest.fixture(scope="module")
def small_chunks(tmp_path_factory):
    """A cache with 8-sample chunks, so an epoch spans many chunks."""
    d = tmp_path_factory.mktemp("chunks")
    write_synth(d / "raw.pkl", SynthConfig(classes=4, per_class=30, seed=2))
    ingest(d / "raw.pkl", d / "cache", IngestConfig(chunk=8))
    write_splits(open_cache(d / "cache"))
    return open_cache(d / "cache")


def subset_samples(cache, split, subset):
    df = pd.read_parquet(cache.directory / "splits.parquet")
    return set(df[(df["split"] == split) & (df["subset"] == subset)]["sample"])


@pytest.mark.parametrize("mode", ["memory", "stream"])
@pytest.mark.parametrize("subset", ["train", "val", "test"])
def test_every_sample_exactly_once(small_chunks, mode, subset):
    ds = SkeletonDataset(small_chunks, LoaderConfig(subset=subset, mode=mode, batch_size=5,
                                                    buffer_chunks=3, train=subset == "train"))
    assert ds.mode == mode
    for epoch in (1, 2):
        ds.set_epoch(epoch)
        seen = np.concatenate([s.numpy() for _, _, _, s in ds])
        assert len(seen) == len(set(seen)) and set(seen) == subset_samples(small_chunks, "1", subset)
    assert len(list(ds)) == len(ds)


def test_batches_match_the_cache(small_chunks):
    arr = small_chunks.open_array()
    idx = small_chunks.index
    ds = SkeletonDataset(small_chunks, LoaderConfig(mode="stream", batch_size=7))
    for x, y, lengths, s in ds:
        for j, sample in enumerate(s.tolist()):
            np.testing.assert_array_equal(x[j].numpy(), arr[sample].astype(np.float32))
            assert y[j] == idx.loc[sample, "label"] and lengths[j] == idx.loc[sample, "valid_frames"]


def test_train_order_shuffles_per_epoch_and_eval_is_fixed(small_chunks):
    tr = SkeletonDataset(small_chunks, LoaderConfig(mode="stream", batch_size=4))
    orders = []
    for epoch in (1, 2, 1):
        tr.set_epoch(epoch)
        orders.append(np.concatenate([s.numpy() for *_, s in tr]))
    assert not np.array_equal(orders[0], orders[1]) and np.array_equal(orders[0], orders[2])
    va = SkeletonDataset(small_chunks, LoaderConfig(subset="val", train=False, batch_size=4))
    seen = np.concatenate([s.numpy() for *_, s in va])
    assert (np.diff(seen) > 0).all()


def test_stream_memory_is_bounded_and_chunks_decoded_once(small_chunks, monkeypatch):
    ds = SkeletonDataset(small_chunks, LoaderConfig(mode="stream", batch_size=4, buffer_chunks=2))
    reads, since_yield, worst = [], [0], [0]
    real = ds._read_chunk

    def counting(c):
        reads.append(int(c))
        since_yield[0] += 1
        worst[0] = max(worst[0], since_yield[0])
        return real(c)

    monkeypatch.setattr(ds, "_read_chunk", counting)
    for _ in ds:
        since_yield[0] = 0
    assert sorted(reads) == sorted(set(reads)) == sorted(ds.chunks().tolist())
    assert worst[0] <= 2  # never more than buffer_chunks decoded between two batches


def test_frame_sampling(small_chunks):
    cfg = LoaderConfig(frames=16, batch_size=8, train=False, subset="val")
    ds = SkeletonDataset(small_chunks, cfg)
    a = [x.numpy() for x, *_ in ds]
    ds.set_epoch(5)
    b = [x.numpy() for x, *_ in ds]
    assert a[0].shape[1:] == (16, 17, 3) and all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    x, _, lengths, _ = next(iter(SkeletonDataset(small_chunks, LoaderConfig(frames=16))))
    assert (lengths == 16).all()


def test_uniform_indices():
    idx = uniform_indices(np.array([100, 16, 5]), 16)
    assert (np.diff(idx[0]) > 0).all() and idx[0].max() < 100 and idx[0].min() >= 0
    assert idx[1].tolist() == list(range(16))
    assert idx[2].tolist() == [i % 5 for i in range(16)]  # short clips loop
    rng = np.random.default_rng(0)
    r = uniform_indices(np.full(50, 90), 9, rng)
    assert ((r // 10) == np.arange(9)).all()  # one frame from each segment of 10
    assert len(np.unique(r[:, 0])) > 1
    two = [uniform_indices(np.array([100]), 10, clip=k, num_clips=2)[0] for k in (0, 1)]
    assert two[0].tolist() != two[1].tolist()


def test_refusals(small_chunks, tmp_path):
    with pytest.raises(SkpipeError, match="more than the cache"):
        SkeletonDataset(small_chunks, LoaderConfig(frames=400))
    with pytest.raises(SkpipeError, match="unknown subset"):
        LoaderConfig(subset="dev")
    from tests.conftest import make_ann, write_pickle

    ingest(write_pickle(tmp_path / "a.pkl", [make_ann("v_A_g01_c01")]), tmp_path / "c")
    with pytest.raises(SkpipeError, match="no splits"):
        SkeletonDataset(open_cache(tmp_path / "c"), LoaderConfig())
    write_splits(open_cache(tmp_path / "c"))
    with pytest.raises(SkpipeError, match="has no val clips"):
        SkeletonDataset(open_cache(tmp_path / "c"), LoaderConfig(subset="val"))


@pytest.mark.parametrize("mode", ["memory", "stream"])
def test_dataloader_workers_share_the_epoch(small_chunks, mode):
    """Each DataLoader worker opens the store itself and takes every other chunk."""
    import torch

    ds = SkeletonDataset(small_chunks, LoaderConfig(mode=mode, batch_size=6))
    ds.set_epoch(3)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    seen = np.concatenate([s.numpy() for *_, s in loader])
    assert len(seen) == len(set(seen)) and set(seen) == subset_samples(small_chunks, "1", "train")


def test_memory_mode_batches_mix_the_whole_subset_whatever_the_workers(small_chunks):
    """A class-sorted cache (each 8-clip chunk holds one class here): with DataLoader workers
    or DDP ranks, memory-mode batches are exactly those of one process, so each draws from every
    class, not from the few chunks a worker was dealt."""
    import torch

    labels = small_chunks.index.set_index("sample")["label"]
    cfg = LoaderConfig(mode="memory", batch_size=16, seed=5)
    ds = SkeletonDataset(small_chunks, cfg)
    ds.set_epoch(2)
    alone = [s.numpy() for *_, s in ds]
    workers = [s.numpy() for *_, s in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=3)]
    assert [list(b) for b in workers] == [list(b) for b in alone]
    ranks = []
    for rank in (0, 1):
        r = SkeletonDataset(small_chunks, LoaderConfig(mode="memory", batch_size=16, seed=5, rank=rank,
                                                       world=2))
        r.set_epoch(2)
        ranks.append([list(s.numpy()) for *_, s in r])
        assert len(ranks[-1]) == len(r)
    assert ranks[0] + ranks[1] == [list(b) for b in alone][0::2] + [list(b) for b in alone][1::2]
    full = [b for b in alone if len(b) == 16]
    assert all(labels.loc[b].nunique() >= 3 for b in full)  # 4 classes; a chunk holds one
