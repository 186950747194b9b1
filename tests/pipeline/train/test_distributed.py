"""Two CPU processes under torchrun (gloo), training ST-GCN (whose BatchNorm buffers must stay
in sync across ranks): disjoint shards covering the epoch, one run directory, val metrics equal
to a single process evaluating the saved model, and resume of a distributed run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.cache import open_cache
from pipeline.run.metrics import read_metrics

RECORDING = Path(__file__).with_name("recording.py")


def torchrun(args, record=None, nproc=2):
    """`skpipe train ARGS` on `nproc` processes; with `record` (a folder), what each rank trained
    on and validated with is saved there (`recording.py`)."""
    env = dict(os.environ)
    how = ["-m", "cli.main"] if record is None else [str(RECORDING), str(record)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           *how, "train", *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def ddp_run(synth_cache, tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    (d / "rec").mkdir()
    args = ["stgcn", "--cache", synth_cache, "--epochs", 2, "--frames", 8, "--batch-size", 8,
            "--out", d / "runs", "--seed", 4]
    r = torchrun(args, record=d / "rec")
    return d, r


def test_ranks_see_disjoint_samples_covering_the_epoch(ddp_run, synth_cache):
    d, _ = ddp_run
    sp = pd.read_parquet(synth_cache / "splits.parquet")
    train = set(sp[(sp["split"] == "1") & (sp["subset"] == "train")]["sample"])
    for epoch in (1, 2):
        a, b = (np.load(d / "rec" / f"rank{r}-epoch{epoch}.npy") for r in (0, 1))
        assert len(a) and len(b) and not set(a) & set(b)
        assert len(a) + len(b) == len(train) and set(a) | set(b) == train


def test_run_directory_written_once(ddp_run):
    d, r = ddp_run
    runs = list((d / "runs").iterdir())
    assert len(runs) == 1
    assert len(read_metrics(runs[0])) == 2
    assert len(list((runs[0] / "tb").iterdir())) == 1
    cfg = json.loads((runs[0] / "config.json").read_text())
    assert cfg["world_size"] == 2 and cfg["effective_batch_size"] == 16
    assert cfg["effective_lr"] == pytest.approx(2e-3)
    assert r.stdout.count("best val accuracy") == 1  # rank 0 alone reports


def test_ranks_evaluate_with_the_same_weights_and_batchnorm_statistics(ddp_run):
    d, _ = ddp_run
    for epoch in (1, 2):
        a, b = (np.load(d / "rec" / f"rank{r}-state{epoch}.npy") for r in (0, 1))
        np.testing.assert_array_equal(a, b)


def test_val_metrics_are_those_of_the_saved_model(ddp_run, synth_cache):
    """Each rank evaluates its share of val; the summed metrics must be those of rank 0's saved
    model evaluated by one process, which holds only if every rank had rank 0's weights and
    BatchNorm statistics."""
    from pipeline.infer.inference import load_model
    from pipeline.inputs.dataset import LoaderConfig, SkeletonDataset
    from pipeline.train.fit import evaluate

    d, _ = ddp_run
    run = next((d / "runs").iterdir())
    last = read_metrics(run)[-1]
    model, _ = load_model(run / "checkpoints" / "last.pt")
    val = SkeletonDataset(open_cache(synth_cache), LoaderConfig(subset="val", frames=8, train=False))
    one = evaluate(model, val, "fp32")
    assert last.val_loss == pytest.approx(one["loss_sum"] / one["samples"], rel=1e-5)
    assert last.val_acc == pytest.approx(one["correct"] / one["samples"])
    bn = [k for k in model.state_dict() if k.endswith("running_var")]
    assert bn, "stgcn has BatchNorm buffers"


def test_distributed_resume(ddp_run, synth_cache):
    d, _ = ddp_run
    run = next((d / "runs").iterdir())
    torchrun(["stgcn", "--cache", synth_cache, "--resume", run, "--epochs", 3])
    rows = read_metrics(run)
    assert [r.epoch for r in rows] == [1, 2, 3]
