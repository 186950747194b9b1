"""Every contract written to disk round-trips through its owner, refuses what is not one in a
line, and no module outside its owner reads its file."""

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from data_manifest import Manifest, ManifestError
from pipeline import SkpipeError
from pipeline.infer.report import Averages, EnsembleReport, Report, Scores, from_json, read_report, to_json
from pipeline.run.checkpoint import Checkpoint, TrainState, load_checkpoint, save_checkpoint
from pipeline.run.config import ModelArgs
from pipeline.run.metrics import EpochRow, append_epoch, read_metrics, truncate_metrics

REPO = Path(__file__).resolve().parents[3]
SCORES = Scores(0.5, 0.9, 0.45, Averages(0.4, 0.5, 0.44), Averages(0.6, 0.5, 0.52))


def test_checkpoint_round_trip(tmp_path):
    net = torch.nn.Linear(3, 2)
    ckpt = Checkpoint.of(net, ModelArgs("stgcn", 2, 0.25), state=TrainState(3, 0.5, 2, 1),
                         optimizer={"state": {}, "param_groups": []}, scheduler={},
                         rng=torch.get_rng_state(), manifest_hash="abc", config={"lr": 0.1})
    save_checkpoint(ckpt, tmp_path / "last.pt")
    back = load_checkpoint(tmp_path / "last.pt")
    assert (back.args, back.state, back.config) == (ckpt.args, ckpt.state, {"lr": 0.1})
    assert back.manifest_hash == "abc"
    torch.testing.assert_close(back.weights, ckpt.weights)
    back.check_resumable(tmp_path / "last.pt")  # holds all a resume restores
    raw = torch.load(tmp_path / "last.pt", weights_only=True)  # the file stays skpipe 0.1's dict
    assert raw["model_name"] == "stgcn" and raw["num_classes"] == 2 and raw["state"]["epoch"] == 3


@pytest.mark.parametrize("edit, message", [
    ({"model_args": {"name": "stgcn", "num_classes": 10**7, "dropout": 0.5}}, "class count"),
    ({"model_args": {"name": "stgcn", "num_classes": -3, "dropout": 0.5}}, "class count"),
    ({"model_args": {"name": "gru", "num_classes": 3, "dropout": 0.5}}, "unknown model"),
    ({"model_args": {"name": "stgcn", "num_classes": 3, "dropout": 0.5, "x": 1}}, "not a skpipe checkpoint"),
    ({"state": {"epoch": -1}}, "bad epoch"),
    ({"state": "x"}, "state is not a dict"),
    ({"model": {"w": "not a tensor"}}, "not a dict of tensors"),
])
def test_hostile_checkpoints_are_refused_before_anything_is_built(tmp_path, edit, message):
    good = Checkpoint.of(torch.nn.Linear(3, 3), ModelArgs("stgcn", 3)).to_dict()
    torch.save({**good, **edit}, tmp_path / "bad.pt")
    with pytest.raises(SkpipeError, match=message) as e:
        load_checkpoint(tmp_path / "bad.pt")
    assert "\n" not in str(e.value)


def test_non_finite_weights_and_missing_resume_state_are_named(tmp_path):
    net = torch.nn.Linear(3, 3)
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    save_checkpoint(Checkpoint.of(net, ModelArgs("stgcn", 3)), tmp_path / "nan.pt")
    ckpt = load_checkpoint(tmp_path / "nan.pt")
    with pytest.raises(SkpipeError, match="NaN or infinite"):
        ckpt.check_finite(tmp_path / "nan.pt")
    with pytest.raises(SkpipeError, match="cannot resume from it"):
        ckpt.check_resumable(tmp_path / "nan.pt")
    short_rng = replace(ckpt, optimizer={"state": {}, "param_groups": []}, scheduler={},
                        rng=torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(SkpipeError, match="no scheduler or RNG state"):
        short_rng.check_resumable(tmp_path / "nan.pt")


def test_epoch_rows_round_trip_and_damage_is_named(tmp_path):
    rows = [EpochRow(e, 1.0 / e, 0.5, 1.1, 0.4 + e / 10, 1e-3, 2.0, 100.0, best=e == 2) for e in (1, 2, 3)]
    for r in rows:
        append_epoch(tmp_path, r)
    assert read_metrics(tmp_path) == rows
    truncate_metrics(tmp_path, 2)
    assert read_metrics(tmp_path) == rows[:2]
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"epoch": "three"}\n')
    with pytest.raises(SkpipeError, match="line 3 is not an epoch"):
        read_metrics(tmp_path)


def test_reports_round_trip_flat_and_refuse_nan(tmp_path):
    rep = Report("runs/a", "stgcn", "1", "test", "best.pt", 2, 10, 1000, "h", "cpu", 100, "j", SCORES)
    text = to_json(rep)
    flat = json.loads(text)
    assert flat["accuracy"] == 0.5 and flat["weighted"]["f1"] == 0.52  # skpipe 0.1's flat layout
    assert from_json(Report, text) == rep
    ens = EnsembleReport(["a", "b"], [1.0, 1.0], "1", "test", 10, "h", ["j", "b"], "cpu", SCORES)
    assert from_json(EnsembleReport, to_json(ens)) == ens
    with pytest.raises(ValueError):
        to_json(replace(rep, scores=replace(SCORES, accuracy=float("nan"))))
    (tmp_path / "report.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SkpipeError, match="not a skpipe report"):
        read_report(tmp_path / "report.json", Report)


def test_manifest_round_trip_and_typed_fields():
    array = {"path": "skeletons.zarr", "shape": [4, 300, 17, 3], "dtype": "float16",
             "chunks": [2, 300, 17, 3]}
    m = Manifest(1, "0.1.0", "now", {"path": "raw.pkl", "size": 1, "sha256": "x"}, {}, array,
                 {"samples": 4}, ["a", "b"])
    assert Manifest.from_json(m.to_json()) == m
    for field, value in (("counts", []), ("class_names", 5), ("array", {}), ("class_names", [1])):
        with pytest.raises(ManifestError, match="malformed manifest"):
            Manifest.from_json(json.dumps({**json.loads(m.to_json()), field: value}))
    with pytest.raises(ManifestError, match="nested too deeply"):
        Manifest.from_json("[" * 100_000 + "]" * 100_000)


# each file format, and the one module that may read or write it by name
OWNERS = {
    r"CONFIG_NAME|\"config\.json\"": {"pipeline/run/config.py"},
    r"METRICS_NAME|metrics_file\(|\"metrics\.jsonl\"": {"pipeline/run/metrics.py"},
    r"torch\.load\(|torch\.save\(": {"pipeline/run/checkpoint.py"},
    r"REPORT_NAME|\"report\.json\"": {"pipeline/run/config.py", "pipeline/infer/report.py",
                                      "pipeline/infer/evaluate.py"},
    r"Manifest\.from_json|MANIFEST_NAME|\"manifest\.json\"": {"data_manifest/manifest.py",
                                                               "data_manifest/__init__.py",
                                                               "pipeline/data/cache.py"},
}


@pytest.mark.parametrize("pattern", list(OWNERS))
def test_only_the_owner_reads_its_file(pattern):
    readers = {p.relative_to(REPO).as_posix() for folder in ("pipeline", "data_manifest")
               for p in (REPO / folder).rglob("*.py") if re.search(pattern, p.read_text())}
    assert readers <= OWNERS[pattern], readers - OWNERS[pattern]


@pytest.mark.parametrize("edit, message", [
    ({"train": {"model": "lstm", "frames": 16.5}}, "--frames must be an integer, got 16.5"),
    ({"train": {"model": "lstm", "num_clips": 1_000_000}}, "--clips must be <= 100"),
    ({"cache": 5}, "cache must be text, got 5"),
    ({"num_classes": 3}, "num_classes 3 does not match its 2 class names"),
])
def test_hostile_run_configs_are_one_line(tmp_path, edit, message):
    from pipeline.run.config import open_run

    good = {"train": {"model": "lstm"}, "cache": "c", "manifest_hash": "h", "num_classes": 2,
            "class_names": ["a", "b"]}
    (tmp_path / "config.json").write_text(json.dumps({**good, **edit}))
    with pytest.raises(SkpipeError, match=message) as e:
        open_run(tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SkpipeError, match="malformed run config"):
        open_run(tmp_path)


def test_files_written_before_the_word_table_read_with_todays_names(tmp_path):
    """`test_clips` (config.json) and `clips` (report.json, a model card) are `num_clips` now."""
    from pipeline.infer.card import ModelCard
    from pipeline.run.config import open_run

    (tmp_path / "config.json").write_text(json.dumps({
        "train": {"model": "lstm", "test_clips": 3}, "cache": "c", "manifest_hash": "h", "num_classes": 2,
        "class_names": ["a", "b"]}))
    assert open_run(tmp_path).config.train.num_clips == 3
    old = json.loads(to_json(Report("r", "lstm", "1", "test", "best.pt", 4, 10, 1000, "h", "cpu", 100, "j",
                                    SCORES)))
    old["clips"] = old.pop("num_clips")
    assert from_json(Report, json.dumps(old)).num_clips == 4
    from models.layouts import Skeleton

    skeleton = {"layout": Skeleton().layout, "dims": 2, "score": True, "persons": 1}
    made = ModelCard("lstm", ("a", "b"), skeleton, "float16", 16, "j", "none", 5, ("x",))
    card = json.loads(made.to_json())
    card["clips"] = card.pop("num_clips")
    assert ModelCard.from_json(json.dumps(card)).num_clips == 5


def test_a_url_that_cannot_be_reached_is_one_line():
    from click.testing import CliRunner

    from cli.main import main

    r = CliRunner().invoke(main, ["info", "--cache", "ftp://127.0.0.1:9/x"])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
