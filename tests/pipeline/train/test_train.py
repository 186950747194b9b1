"""`fit`: the run directory, determinism, exact resume, refusals, and the test set untouched."""

import json
from dataclasses import asdict

import pytest
import torch

import pipeline.train.fit as train_mod
from pipeline import SkpipeError
from pipeline.run.metrics import read_metrics
from pipeline.train.fit import TrainConfig, fit

TINY = {"epochs": 3, "frames": 12, "batch_size": 16, "threads": 1}
VOLATILE = ("seconds", "samples_per_s")


def stable(rows):
    return [{k: v for k, v in asdict(r).items() if k not in VOLATILE} for r in rows]


def test_run_directory(synth_cache, tmp_path):
    s = fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), **TINY))
    run = s.run_dir
    assert run.name.startswith("raw-lstm-j-split1-")  # dataset (the pickle's name), model, stream, split
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["epochs"] == 3 and cfg["parameters"] > 0 and cfg["manifest_hash"]
    assert {"torch", "zarr", "numpy"} <= set(cfg["versions"]) and cfg["loader_mode"] == "memory"
    rows = read_metrics(run)
    assert [r.epoch for r in rows] == [1, 2, 3]
    assert all(r.finite() and r.seconds > 0 and r.samples_per_s > 0 for r in rows)
    assert (run / "checkpoints" / "best.pt").exists() and (run / "checkpoints" / "last.pt").exists()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["state"]["epoch"] == 3 and ckpt["model_name"] == "lstm"


def test_periodic_checkpoints(synth_cache, tmp_path):
    cfg = TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), checkpoint_every=2, **TINY)
    run = fit(cfg).run_dir
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "epoch_002.pt", "last.pt"]


def test_same_seed_same_metrics(synth_cache, tmp_path):
    cfg = TrainConfig(model="stgcn", cache=str(synth_cache), out=str(tmp_path), **{**TINY, "epochs": 2})
    a = read_metrics(fit(cfg).run_dir)
    b = read_metrics(fit(cfg).run_dir)
    assert stable(a) == stable(b)


def test_resume_equals_uninterrupted(synth_cache, tmp_path):
    cfg = TrainConfig(model="stgcn", cache=str(synth_cache), out=str(tmp_path), **TINY)
    full = read_metrics(fit(cfg).run_dir)

    def stop_in_epoch_2(name, info):
        if name == "step" and info["epoch"] == 2 and info["step"] == 2:
            raise KeyboardInterrupt

    s = fit(cfg, event=stop_in_epoch_2)
    assert s.interrupted and s.epochs == 1
    resumed = fit(TrainConfig(model="stgcn", cache=str(synth_cache)), resume=s.run_dir)
    assert resumed.run_dir == s.run_dir and not resumed.interrupted
    assert stable(read_metrics(s.run_dir)) == stable(full)


def test_test_subset_is_never_opened(synth_cache, tmp_path, monkeypatch):
    opened = []
    real = train_mod.SkeletonDataset

    def recording(cache, cfg):
        opened.append(cfg.subset)
        return real(cache, cfg)

    monkeypatch.setattr(train_mod, "SkeletonDataset", recording)
    fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), **{**TINY, "epochs": 1}))
    assert sorted(opened) == ["train", "val"]


def test_refusals(synth_cache, tmp_path):
    with pytest.raises(SkpipeError, match="unknown model"):
        TrainConfig(model="resnet")
    with pytest.raises(SkpipeError, match="no cache"):
        fit(TrainConfig(model="lstm", cache=str(tmp_path / "none")))
    run = fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), **{**TINY, "epochs": 1}))
    with pytest.raises(SkpipeError, match="is a lstm run, not stgcn"):
        fit(TrainConfig(model="stgcn", cache=str(synth_cache)), resume=run.run_dir)
    cfg_path = run.run_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["manifest_hash"] = "0" * 64
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(SkpipeError, match="another cache"):
        fit(TrainConfig(model="lstm", cache=str(synth_cache)), resume=run.run_dir)


def test_train_and_evaluate_from_an_fsspec_url(synth_cache, tmp_path):
    """A cache copied to another filesystem (here fsspec's memory://) trains and evaluates."""
    import fsspec

    from pipeline.data.cache import open_cache
    from pipeline.infer.evaluate import evaluate_run

    fs = fsspec.filesystem("memory")
    fs.put(str(synth_cache), "/shared-cache", recursive=True)
    url = "memory://shared-cache"
    cache = open_cache(url)
    assert cache.manifest_hash == open_cache(synth_cache).manifest_hash
    s = fit(TrainConfig(model="lstm", cache=url, out=str(tmp_path), **{**TINY, "epochs": 1}))
    assert json.loads((s.run_dir / "config.json").read_text())["cache"] == url
    assert evaluate_run(s.run_dir, "test").report.samples > 0
    file_url = f"file://{synth_cache}"
    assert open_cache(file_url).manifest.num_samples == cache.manifest.num_samples
