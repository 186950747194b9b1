"""The CUDA path: training (bf16, fp16 with loss scaling), evaluation, prediction and resume on a
GPU agree with the CPU path. Skipped where no GPU is present (CI); run on a GPU machine."""

import json

import numpy as np
import pytest
import torch

from pipeline.infer.evaluate import evaluate_run
from pipeline.infer.predict import predict_file
from pipeline.infer.report import to_json
from pipeline.run.config import open_run
from pipeline.run.metrics import read_metrics
from pipeline.train.fit import TrainConfig, fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.fixture(scope="module")
def cuda_run(synth_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("cuda")
    return fit(TrainConfig(model="stgcnpp", cache=str(synth_cache), out=str(out), epochs=2, frames=16,
                           device="cuda", num_clips=2)).run_dir


def test_trains_on_the_gpu(cuda_run):
    run = open_run(cuda_run)
    assert run.config.device.startswith("cuda")
    assert all(np.isfinite(r.train_loss) for r in read_metrics(cuda_run))


def test_evaluation_on_gpu_and_cpu_agree(cuda_run):
    gpu = json.loads(to_json(evaluate_run(cuda_run, "test", device="cuda").report))
    cpu = json.loads(to_json(evaluate_run(cuda_run, "test", device="cpu", force=True).report))
    assert gpu["device"].startswith("cuda") and cpu["device"] == "cpu"
    assert gpu["samples"] == cpu["samples"]
    assert abs(gpu["accuracy"] - cpu["accuracy"]) <= 1 / gpu["samples"] + 1e-9  # TF32: one tie may flip


def test_predict_on_gpu_and_cpu_agree(cuda_run, synth_cache):
    raw = synth_cache.parent / "raw.pkl"
    gpu = predict_file(cuda_run, raw, top=3, batch_size=16, device="cuda")
    cpu = predict_file(cuda_run, raw, top=3, batch_size=16, device="cpu")
    p_gpu = np.array([[t["probability"] for t in r["top"]] for r in gpu])
    p_cpu = np.array([[t["probability"] for t in r["top"]] for r in cpu])
    np.testing.assert_allclose(p_gpu, p_cpu, atol=5e-3)
    agree = np.mean([a["top"][0]["label"] == b["top"][0]["label"] for a, b in zip(gpu, cpu, strict=True)])
    assert agree >= 0.95


def test_fp16_with_loss_scaling(synth_cache, tmp_path):
    s = fit(TrainConfig(model="stgcn", cache=str(synth_cache), out=str(tmp_path), epochs=2, frames=16,
                        device="cuda", precision="fp16"))
    assert all(np.isfinite(r.train_loss) for r in read_metrics(s.run_dir))
    rep = evaluate_run(s.run_dir, "val", device="cpu").report  # fp16 run, evaluated in fp32 on CPU
    assert 0 <= rep.scores.accuracy <= 1


def test_a_cpu_run_resumes_on_the_gpu(synth_cache, tmp_path):
    first = fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), epochs=1, frames=8,
                            device="cpu")).run_dir
    from pipeline.train.resume import resume_options

    cfg, applied = resume_options(first, {"device": "cuda", "epochs": 2})
    assert applied == ["device", "epochs"]
    fit(cfg, resume=first)
    assert [r.epoch for r in read_metrics(first)] == [1, 2]



def test_a_gpu_holds_the_subset_and_builds_the_same_batches(synth_cache, tmp_path):
    """`--loader auto` on a GPU: the subset held there, batches equal to the numpy loader's, and
    a run recording it."""
    from pipeline.data.cache import open_cache
    from pipeline.inputs.augment import Augment
    from pipeline.inputs.dataset import LoaderConfig, SkeletonDataset

    cache = open_cache(synth_cache)
    opts = dict(frames=24, feats="bm", normalize="pyskl", augment=Augment(flip=0.5, rotate=15),
                skeleton=cache.skeleton, seed=4)
    gpu = SkeletonDataset(cache, LoaderConfig(device="cuda:0", **opts))
    cpu = SkeletonDataset(cache, LoaderConfig(device="cpu", **opts))
    assert gpu.mode == "device" and cpu.mode == "memory"
    for (x, y, lengths, s), (xg, yg, lg, sg) in zip(cpu, gpu, strict=True):
        assert xg.is_cuda and yg.is_cuda
        torch.testing.assert_close(xg.cpu(), x, rtol=1e-4, atol=1e-4)
        assert torch.equal(yg.cpu(), y) and torch.equal(lg.cpu(), lengths) and torch.equal(sg, s)
    result = fit(TrainConfig(model="stgcn", cache=str(synth_cache), out=str(tmp_path), epochs=1,
                             frames=16, device="cuda"))
    assert result.loader_mode == "device"
