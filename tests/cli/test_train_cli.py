"""`skpipe train` through the CLI: option mistakes in one line, resume from the run alone."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.cli.test_data_cli import assert_one_line_error


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("args, pattern", [
    (["--workers", -1], "--workers must be >= 0, got -1"),
    (["--dropout", 1.5], r"--dropout must be in \[0, 1\), got 1.5"),
    (["--epochs", 0], "--epochs must be >= 1, got 0"),
    (["--batch-size", 0], "--batch-size must be >= 1, got 0"),
    (["--lr", -1], "--lr must be > 0, got -1"),
    (["--flip", 2], r"--flip must be a probability in \[0, 1\], got 2"),
])
def test_bad_numbers_are_named_and_write_nothing(synth_cache, tmp_path, args, pattern):
    r = run("train", "stgcn", "--cache", synth_cache, "--out", tmp_path / "runs", *args)
    assert_one_line_error(r, pattern)
    assert not (tmp_path / "runs").exists()


def test_resume_takes_everything_from_the_run(synth_cache, tmp_path, monkeypatch):
    r = run("train", "lstm", "--cache", synth_cache, "--out", tmp_path / "runs", "--epochs", 1,
            "--frames", 8, "--threads", 1)
    assert r.exit_code == 0, r.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    # laid out for 80 columns (CliRunner renders at rich's default width, 80): no line is
    # wrapped mid-phrase, and the commands to copy stay whole
    lines = r.output.splitlines()
    assert all(len(line) <= 80 for line in lines if not line.startswith(("run:", "next:")))
    assert f"next: skpipe evaluate {run_dir}" in lines
    assert any(line.startswith("recipe seed · stream j · 8 frames") for line in lines)
    monkeypatch.chdir(tmp_path)  # elsewhere, and without --cache: the run knows its cache
    assert_one_line_error(run("train", "--resume", run_dir, "--lr", 0.5), r"--lr 0.5 differs from the run's")
    assert_one_line_error(run("train", "stgcn", "--resume", run_dir), "is a lstm run, not stgcn")
    r = run("train", "--resume", run_dir, "--epochs", 2, "--workers", 1)
    assert r.exit_code == 0, r.output
    assert "resuming with --epochs 2, --workers 1" in r.output
    assert "Traceback" not in r.output


def test_a_closed_pipe_is_a_normal_end(synth_cache):
    env = {**os.environ, "SKPIPE_CACHE": str(synth_cache)}
    # `true` exits without reading: every write of skpipe meets a closed pipe
    p = subprocess.run(["bash", "-o", "pipefail", "-c", f"{sys.executable} -m cli.main info | true"],
                       env=env, capture_output=True, text=True)
    assert p.returncode == 0 and "Error" not in p.stderr and "Traceback" not in p.stderr


def test_models_table():
    r = run("models")
    assert r.exit_code == 0 and "stgcnpp" in r.output and "GFLOP" in r.output and "1,403,553" in r.output
    lstm = next(line for line in r.output.splitlines() if "│ lstm" in line)
    gflop = float(lstm.split("│")[-2])
    # nearly every LSTM weight is used once per step in one multiply-add: ~2 x 672k x 100 frames
    assert 0.10 < gflop < 0.16, lstm


def test_a_distributed_run_resumes_on_as_many_processes(tmp_path, monkeypatch):
    from pipeline.run.config import RunConfig, write_config
    from pipeline.train.fit import TrainConfig
    from pipeline.train.resume import saved_world_size

    write_config(tmp_path, RunConfig(TrainConfig("lstm"), "cache", "h", 2, ("a", "b"), world_size=2))
    assert saved_world_size(tmp_path) == 2 and saved_world_size(tmp_path / "none") == 1
    launched = []
    monkeypatch.setattr("pipeline.train.distributed.launch", lambda n, argv: launched.append((n, argv)) or 0)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    r = CliRunner().invoke(main, ["train", "--resume", str(tmp_path)])
    assert r.exit_code == 0 and launched and launched[0][0] == 2


def test_resume_compares_only_the_options_given(synth_cache, tmp_path):
    """A run on protocol 2 resumes with no option (no default may stand in for one), an explicit
    runtime option is recorded in config.json, and a finished run says so in one line."""
    import json

    r = run("train", "lstm", "--cache", synth_cache, "--out", tmp_path / "runs", "--epochs", 1,
            "--frames", 8, "--threads", 1, "--split", 2, "--loader", "stream")
    assert r.exit_code == 0, r.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert_one_line_error(run("train", "--resume", run_dir), "finished its 1 epochs; give a larger --epochs")
    r = run("train", "--resume", run_dir, "--epochs", 2, "--loader", "auto")
    assert r.exit_code == 0, r.output
    assert "resuming with --epochs 2, --loader auto" in r.output and "resuming after epoch 1" in r.output
    saved = json.loads((run_dir / "config.json").read_text())["train"]
    assert saved["loader"] == "auto" and saved["split"] == "2" and saved["epochs"] == 2


def test_usage_mistakes_are_one_line_and_escaped():
    r = run("evaluate", "nowhere", "--subset", "dev\x1b[31m")
    assert_one_line_error(r, r"Invalid value for '--subset'.*dev\\x1b\[31m.*evaluate --help")
    assert "\x1b" not in r.output
    assert_one_line_error(run("predict", "nowhere", "x.pkl", "--threads", 0), "--threads")


def test_without_a_terminal_long_epochs_and_evaluations_still_show_progress(tmp_path, synth_cache,
                                                                             monkeypatch):
    import cli.train
    import cli.ui

    monkeypatch.setattr(cli.train, "QUIET_SECONDS", 0.0)  # a line at every step, as after 30 s
    monkeypatch.setattr(cli.ui, "QUIET_SECONDS", 0.0)
    r = CliRunner().invoke(main, ["train", "lstm", "--cache", str(synth_cache), "--epochs", "1", "--frames",
                                  "8", "--batch-size", "8", "--threads", "1", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    steps = [ln for ln in r.output.splitlines() if ln.strip().startswith("step ")]
    assert len(steps) >= 5 and "samples/s" in steps[0]
    (run,) = tmp_path.iterdir()
    from pipeline.infer.evaluate import evaluate_run

    calls: list[tuple[int, int]] = []
    evaluate_run(run, "test", batch_size=8, progress=lambda done, total: calls.append((done, total)))
    total = calls[-1][1]
    assert total > 1 and calls == [(i, total) for i in range(1, total + 1)]
    lines: list[str] = []
    monkeypatch.setattr(cli.ui.console, "print", lambda text, **kw: lines.append(text))
    with cli.ui.batch_progress("Evaluating on test") as progress:
        for done in range(1, 4):
            progress(done, 3)
    assert lines == ["Evaluating on test: 1 of 3 batches", "Evaluating on test: 2 of 3 batches"]


def test_the_train_header_fits_80_columns(tmp_path, synth_cache):
    r = CliRunner().invoke(main, ["train", "stgcnpp", "--recipe", "recommended", "--cache", str(synth_cache),
                                  "--epochs", "1", "--frames", "8", "--threads", "1", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    head = r.output.split("per epoch:")[0].splitlines()
    assert any(ln.startswith("recipe recommended") for ln in head)
    assert any(ln.startswith("loader ") and ln.rstrip().endswith("cpu") for ln in head)  # not wrapped
    assert all(len(ln) <= 80 for ln in head if not ln.startswith("run: "))


def test_a_cache_with_one_protocol_trains_on_it_without_split(tmp_path):
    from pipeline.data.cache import ingest, open_cache
    from pipeline.data.splits import write_splits
    from pipeline.run.config import open_run
    from tests.pipeline.data.test_skeletons import pickle3d

    ingest(pickle3d(tmp_path / "ntu.pkl", n=24), tmp_path / "cache")
    write_splits(open_cache(tmp_path / "cache"))
    r = run("train", "stgcn", "--cache", tmp_path / "cache", "--epochs", 1, "--frames", 8, "--threads", 1,
            "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert open_run(run_dir).config.train.split == "xsub"


def test_class_names_cannot_become_spreadsheet_formulas():
    from pipeline.infer.evaluate import spreadsheet_safe

    assert spreadsheet_safe('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    names = ("+1", "-a", "@b", "\tc", "walk")
    assert [spreadsheet_safe(c) for c in names] == ["'+1", "'-a", "'@b", "'\tc", "walk"]


def test_threads_retune_only_on_a_sustained_change_and_never_back_to_a_slower_count():
    import torch

    from cli.ui import ThreadTuner

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        t = ThreadTuner()
        t.epoch_done(30.0)  # 2 threads: 30 samples/s
        assert t.retune(measured=1) is None  # measured once: not yet
        assert t.retune(measured=1) == (2, 1) and torch.get_num_threads() == 1
        t.epoch_done(40.0)  # 1 thread ran faster
        assert t.retune(measured=2) is None and t.retune(measured=2) is None  # 2 was slower: stay
        assert torch.get_num_threads() == 1
        assert t.retune(measured=1) is None  # no change
    finally:
        torch.set_num_threads(before)


def test_a_resume_uses_the_runs_cache_and_refuses_another(synth_cache, tmp_path, monkeypatch):
    from pipeline.run.options import TrainConfig
    from pipeline.train.fit import fit

    s = fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), epochs=1, frames=8,
                        threads=1, precision="fp32"))
    monkeypatch.chdir(tmp_path)  # the API caller's cache ("cache" here) does not exist
    again = fit(TrainConfig(model="lstm", epochs=2, threads=1), resume=s.run_dir)
    assert again.epochs == 2 and again.run_dir == s.run_dir
    assert_one_line_error(run("train", "--resume", s.run_dir, "--cache", tmp_path / "other", "--epochs", 3),
                          "differs from the run's")


def test_a_protocol_without_val_trains_and_keeps_the_last_epoch(tmp_path):
    """Every class one train clip (or --val-fraction 0): nothing to choose on; it says so, and
    best.pt is the last epoch, with val NaN in metrics.jsonl, never a made-up 0."""
    import math

    import torch

    from pipeline.data.cache import ingest, open_cache
    from pipeline.data.splits import SplitConfig, write_splits
    from pipeline.run.checkpoint import load_checkpoint
    from pipeline.run.metrics import read_metrics
    from pipeline.source.synth import SynthConfig, write_synth

    write_synth(tmp_path / "raw.pkl", SynthConfig(classes=3, per_class=6, seed=0))
    ingest(tmp_path / "raw.pkl", tmp_path / "cache")
    _, meta = write_splits(open_cache(tmp_path / "cache"), SplitConfig(val_fraction=0.0))
    assert meta.protocol("1").counts["val"] == 0
    r = run("train", "lstm", "--cache", tmp_path / "cache", "--epochs", 2, "--frames", 8, "--threads", 1,
            "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    assert "no val clips in this protocol" in r.output and "best.pt is the last epoch, 2 of 2" in r.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    rows = read_metrics(run_dir)
    assert [row.best for row in rows] == [True, True] and all(math.isnan(row.val_acc) for row in rows)
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt").weights
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt").weights
    assert all(torch.equal(best[k], last[k]) for k in last)


def test_four_streams_train_evaluate_and_fuse_in_one_command(synth_cache, tmp_path):
    from pipeline.infer.report import EnsembleReport, read_report

    r = CliRunner().invoke(main, ["train", "stgcnpp", "--cache", str(synth_cache), "--feats", "j,b,jm,bm",
                                  "--epochs", "1", "--frames", "12", "--threads", "1", "--out",
                                  str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    runs = sorted((tmp_path / "runs").iterdir())
    streams = {p.name.split("-stgcnpp-")[1].split("-")[0] for p in runs}
    assert len(runs) == 4 and streams == {"j", "b", "jm", "bm"}
    assert all((p / "eval" / "test" / "report.json").is_file() for p in runs)
    fused = next((tmp_path / "ensembles").iterdir())
    rep = read_report(fused / "report.json", EnsembleReport)
    assert sorted(rep.feats) == ["b", "bm", "j", "jm"] and "fused" in r.output
    bad = CliRunner().invoke(main, ["train", "stgcnpp", "--cache", str(synth_cache), "--feats", "j,x"])
    assert bad.exit_code == 1 and "--feats takes" in bad.output and "Traceback" not in bad.output


def test_samples_per_second_keep_their_digits_on_slow_fine_tuning():
    from cli.train import rate

    assert (rate(0.4), rate(5.24), rate(22.4)) == ("0.40", "5.2", "22")


def test_training_on_a_few_clips_a_class_says_what_to_expect(tmp_path):
    from tests.conftest import make_ann, write_pickle

    names = [f"own_{c}_{i}" for c in ("wave", "clap") for i in range(3)]
    anns = [make_ann(n, label=int("clap" in n), t=20, seed=k) for k, n in enumerate(names)]
    split = {"train": [n for n in names if n.endswith("_0")], "val": [n for n in names if n.endswith("_1")],
             "test": [n for n in names if n.endswith("_2")]}
    raw = write_pickle(tmp_path / "own.pkl", {"split": split, "annotations": anns})
    cache = str(tmp_path / "c")
    assert run("ingest", raw, "--cache", cache).exit_code == 0
    assert run("build-splits", "--cache", cache).exit_code == 0
    r = run("train", "lstm", "--cache", cache, "--epochs", "1", "--frames", "8", "--threads", "1",
            "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "2 classes with fewer than 5 training clips" in text and ": 1)" in text and "--init" in text


def test_each_epoch_row_says_how_long_the_run_has_left():
    from types import SimpleNamespace

    from cli.train import EpochView

    view = EpochView()
    view.epochs = 10
    view.rows = [SimpleNamespace(seconds=5.0), SimpleNamespace(seconds=7.0)]
    assert view._left(2) == " ~48 s left" and view._left(10) == ""
    view.rows = [SimpleNamespace(seconds=120.0)]
    assert view._left(1) == " ~18 min left"
