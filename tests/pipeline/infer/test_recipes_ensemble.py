"""Recipes resolve as documented; ensembles are the weighted mean of their runs; seeds grouped."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from pipeline import SkpipeError
from pipeline.infer.compare import compare_runs, seed_statistics
from pipeline.infer.evaluate import ensemble_runs, evaluate_run, predict_subset
from pipeline.infer.shipped import run_model
from pipeline.run.config import open_run
from pipeline.run.recipes import RECIPES, recipe_options
from pipeline.train.fit import TrainConfig, fit


def test_seed_recipe_is_the_studys_table_and_explicit_options_win():
    seed = TrainConfig(model="stgcn", **recipe_options("seed", {}))
    table = (seed.batch_size, seed.lr, seed.weight_decay, seed.dropout, seed.frames)
    assert table == (32, 1e-3, 1e-4, 0.5, 300)
    assert (seed.optimizer, seed.schedule, seed.precision, seed.feats) == ("adam", "plateau", "fp32", "j")
    rec = TrainConfig(model="stgcnpp", **recipe_options("recommended", {"frames": 64, "lr": None}))
    assert rec.frames == 64 and rec.lr == RECIPES["recommended"]["lr"] and rec.recipe == "recommended"
    for key, value in RECIPES["recommended"].items():
        if key != "frames":
            assert getattr(rec, key) == value
    with pytest.raises(SkpipeError, match="--recipe"):
        recipe_options("fastest", {})


@pytest.mark.parametrize("options, pattern", [
    ({"feats": "xyz"}, "--feats"), ({"optimizer": "lamb"}, "--optimizer"),
    ({"schedule": "step"}, "--schedule"), ({"dropout": 1.5}, "--dropout must be in"),
    ({"workers": -1}, "--workers must be >= 0"), ({"label_smoothing": 1.0}, "--label-smoothing"),
])
def test_bad_train_options_are_named(options, pattern):
    with pytest.raises(SkpipeError, match=pattern):
        TrainConfig(model="stgcn", **options)


@pytest.fixture(scope="module")
def two_streams(synth_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("streams")
    return [fit(TrainConfig(model="stgcn", cache=str(synth_cache), out=str(out), epochs=1, frames=8,
                            threads=1, feats=f, normalize="pyskl", flip=0.5)).run_dir for f in ("j", "b")]


def test_ensemble_is_the_weighted_mean_of_its_runs(two_streams, tmp_path):
    probs = []
    for d in two_streams:
        run = open_run(d)
        model, _ = run_model(run)
        p, y, _ = predict_subset(model, run.open_cache(), run, "test", 2)
        probs.append(p)
    r = ensemble_runs(two_streams, [3.0, 1.0], "test", clips=2, out=tmp_path / "ens")
    np.testing.assert_allclose(r.probs, (3 * probs[0] + probs[1]) / 4, rtol=1e-5)
    rep = json.loads((tmp_path / "ens" / "report.json").read_text())
    assert rep["accuracy"] == pytest.approx(float((r.probs.argmax(1) == y).mean()))
    assert rep["feats"] == ["j", "b"] and (tmp_path / "ens" / "confusion.png").exists()


def test_ensemble_refusals(two_streams, synth_cache, tmp_path):
    runner = CliRunner()

    def refused(args, pattern):
        r = runner.invoke(main, ["ensemble", *map(str, args), "--out", str(tmp_path / "e")])
        assert r.exit_code != 0 and "Traceback" not in r.output and pattern in r.output, r.output
        assert not (tmp_path / "e").exists()

    refused(two_streams[:1], "at least two runs")
    refused([*two_streams, "--weights", "1,2,3"], "--weights has 3 values for 2 runs")
    refused([*two_streams, "--weights", "a,b"], "--weights must be numbers")
    other = fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path / "o"), epochs=1, frames=8,
                            threads=1, split="2")).run_dir
    refused([two_streams[0], other], "differ in protocol")
    (other / "checkpoints" / "best.pt").unlink()
    other_cfg = json.loads((other / "config.json").read_text())
    other_cfg["train"]["split"] = "1"
    (other / "config.json").write_text(json.dumps(other_cfg))
    refused([two_streams[0], other], "no checkpoint")


def test_compare_groups_seeds(synth_cache, tmp_path):
    runs = []
    for seed in (0, 1, 2):
        d = fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), epochs=1, frames=8,
                            threads=1, seed=seed)).run_dir
        evaluate_run(d, "test")
        runs.append(d)
    df, _ = compare_runs(runs)
    stats = seed_statistics(df)
    assert len(stats) == 1 and stats["seeds"][0] == 3
    assert stats["accuracy_mean"][0] == pytest.approx(df["accuracy"].mean())
    assert stats["accuracy_std"][0] == pytest.approx(df["accuracy"].std())
    r = CliRunner().invoke(main, ["compare", *map(str, runs)])
    assert r.exit_code == 0 and "mean ± std" in r.output
    (tmp_path / "t.md").write_text("mine")
    r = CliRunner().invoke(main, ["compare", *map(str, runs), "--markdown", str(tmp_path / "t.md")])
    assert r.exit_code != 0 and "already exists" in r.output and (tmp_path / "t.md").read_text() == "mine"
    md = str(tmp_path / "t.md")
    r = CliRunner().invoke(main, ["compare", *map(str, runs), "--markdown", md, "--force"])
    assert r.exit_code == 0 and "| lstm |" in (tmp_path / "t.md").read_text()


def test_compare_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, pipeline.infer.compare; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_runs_name_their_stream_and_ensembles_live_beside_runs(two_streams):
    """`compare runs/*` keeps working after `ensemble`, and compare lists ensembles too."""
    runs_dir = two_streams[0].parent
    assert [d.name.split("-")[:3] for d in two_streams] == [["raw", "stgcn", "j"], ["raw", "stgcn", "b"]]
    for d in two_streams:
        evaluate_run(d, "test", force=True)
    r = CliRunner().invoke(main, ["ensemble", *map(str, two_streams)])
    assert r.exit_code == 0, r.output
    assert r.output.count("reused") == 2  # the runs' evaluations, not run again
    (ens,) = (runs_dir.parent / "ensembles").iterdir()
    assert sorted(runs_dir.iterdir()) == sorted(two_streams)  # nothing new in runs/
    wide = CliRunner().invoke(main, ["compare", *map(str, sorted(runs_dir.iterdir())), str(ens),
                                     "--markdown", str(runs_dir.parent / "c.md")], terminal_width=80)
    assert wide.exit_code == 0, wide.output
    md = (runs_dir.parent / "c.md").read_text()
    assert "| stgcn | j |" in md and "| stgcn | b |" in md and "| ensemble | j+b |" in md
    assert all(len(line) <= 80 for line in wide.output.splitlines())
    assert "…" not in wide.output  # nothing truncated at 80 columns


def test_ensemble_reuses_saved_probabilities_only_when_they_match(two_streams, tmp_path):
    for d in two_streams:
        evaluate_run(d, "test", force=True)
    fresh = []
    for d in two_streams:
        run = open_run(d)
        model, _ = run_model(run)
        fresh.append(predict_subset(model, run.open_cache(), run, "test", run.config.train.num_clips)[0])
    r = ensemble_runs(two_streams, out=tmp_path / "a")
    assert r.reused == [d.name for d in two_streams]
    np.testing.assert_allclose(r.probs, (fresh[0] + fresh[1]) / 2, rtol=1e-5)
    assert ensemble_runs(two_streams, clips=3, out=tmp_path / "b").reused == []  # other clips: run again
    (two_streams[1] / "eval" / "test" / "probs.npz").write_bytes(b"garbage")
    r = ensemble_runs(two_streams, out=tmp_path / "c")
    assert r.reused == [two_streams[0].name]
    np.testing.assert_allclose(r.probs, (fresh[0] + fresh[1]) / 2, rtol=1e-5)
