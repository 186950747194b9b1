"""The host loader (`--loader memory`) and the device loader (`--loader device`, here on the CPU
device) give the same batches for every stream and augmentation: the same samples, labels,
lengths and draws, inputs equal up to float rounding (the device loader normalizes once when it
holds the subset), and a whole run trained either way ending at the same metrics."""

import json

import pytest
import torch

from pipeline import SkpipeError
from pipeline.data.cache import ingest, open_cache
from pipeline.data.splits import write_splits
from pipeline.infer.evaluate import evaluate_run
from pipeline.inputs.augment import Augment
from pipeline.inputs.dataset import LoaderConfig, SkeletonDataset
from pipeline.run.options import TrainConfig
from pipeline.train.fit import fit
from tests.pipeline.data.test_skeletons import pickle3d

AUGMENTS = {"none": Augment(), "all": Augment(flip=0.5, rotate=15, scale=0.2, shift=0.1)}


@pytest.fixture(scope="module")
def ntu_cache(tmp_path_factory):
    """A 3D two-person cache (N, 2, 300, 20, 3), no scores."""
    d = tmp_path_factory.mktemp("ntu")
    ingest(pickle3d(d / "ntu.pkl", n=24, m=2), d / "cache")
    write_splits(open_cache(d / "cache"))
    return open_cache(d / "cache")


def batches(cache, mode, **options):
    ds = SkeletonDataset(cache, LoaderConfig(mode=mode, batch_size=7, seed=3, **options))
    assert ds.mode == mode
    ds.set_epoch(2)
    return list(ds)


def assert_same_batches(host, dev):
    assert len(host) == len(dev) > 1
    for (x, y, lengths, s), (xd, yd, ld, sd) in zip(host, dev, strict=True):
        assert xd.dtype == torch.float32 and xd.shape == x.shape
        torch.testing.assert_close(xd, x, rtol=1e-5, atol=1e-5)
        assert torch.equal(yd, y) and torch.equal(ld, lengths) and torch.equal(sd, s)


@pytest.mark.parametrize("feats", ["j", "b", "jm", "bm"])
@pytest.mark.parametrize("augment", list(AUGMENTS))
@pytest.mark.parametrize("frames", [300, 24])
def test_training_batches_match_the_host_loader(synth_cache, feats, augment, frames):
    cache = open_cache(synth_cache)
    opts = dict(train=True, feats=feats, augment=AUGMENTS[augment], frames=frames, normalize="pyskl",
                skeleton=cache.skeleton)
    assert_same_batches(batches(cache, "memory", **opts), batches(cache, "device", **opts))


@pytest.mark.parametrize("normalize", ["none", "body", "pyskl"])
@pytest.mark.parametrize("feats", ["j", "bm"])
def test_3d_two_person_batches_match(ntu_cache, normalize, feats):
    opts = dict(train=True, feats=feats, augment=AUGMENTS["all"], frames=8, normalize=normalize,
                skeleton=ntu_cache.skeleton, subset="train", split="xsub")
    host, dev = batches(ntu_cache, "memory", **opts), batches(ntu_cache, "device", **opts)
    assert host[0][0].shape[1:] == (2, 8, 20, 3)  # (B, M, frames, V, C)
    assert_same_batches(host, dev)


@pytest.mark.parametrize("frames", [300, 24])
def test_evaluation_clips_match(synth_cache, frames):
    cache = open_cache(synth_cache)
    opts = dict(train=False, subset="val", num_clips=3, feats="jm", frames=frames, skeleton=cache.skeleton)
    host, dev = batches(cache, "memory", **opts), batches(cache, "device", **opts)
    assert len(host[0][2]) == 3 * len(host[0][1])  # K clips per sample, folded into the batch
    assert_same_batches(host, dev)


def test_auto_holds_on_the_device_only_on_a_gpu(synth_cache):
    cache = open_cache(synth_cache)
    assert SkeletonDataset(cache, LoaderConfig(device="cpu")).mode == "memory"


def test_a_subset_that_does_not_fit_is_one_line(synth_cache):
    with pytest.raises(SkpipeError, match="--loader device: the train subset .* does not fit on cpu"):
        SkeletonDataset(open_cache(synth_cache), LoaderConfig(mode="device", memory_limit=1000))


def test_a_run_trained_on_the_device_starts_where_the_numpy_loader_does(synth_cache, tmp_path):
    """An epoch of stgcnpp with augmentation and sampled frames (`--workers 2`, which the device
    loader does not use): the first step's loss is the same, and the run records its loader.
    Later steps drift apart by float rounding, which Adam amplifies: inputs perturbed by 1e-7
    moved the fourth step's loss by 4e-3 here, as much as the device loader does."""
    torch.set_num_threads(1)
    losses: dict[str, list[float]] = {}
    samples: dict[str, int] = {}
    for mode, workers in (("memory", 0), ("device", 2)):
        cfg = TrainConfig("stgcnpp", cache=str(synth_cache), epochs=1, frames=16, loader=mode,
                          workers=workers, flip=0.5, rotate=10, feats="b", out=str(tmp_path / mode))
        steps: list[float] = losses.setdefault(mode, [])
        result = fit(cfg, event=lambda name, info, steps=steps: steps.append(info["loss"])
                     if name == "step" else None)
        assert result.loader_mode == mode
        assert json.loads((result.run_dir / "config.json").read_text())["loader_mode"] == mode
        samples[mode] = evaluate_run(result.run_dir, "test", clips=2).report.samples  # its loader
    assert len(losses["device"]) == len(losses["memory"]) > 2
    assert losses["device"][0] == pytest.approx(losses["memory"][0], abs=1e-5)
    assert losses["device"] == pytest.approx(losses["memory"], abs=0.02)
    assert samples["device"] == samples["memory"] > 0
