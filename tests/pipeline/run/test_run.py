"""config.json as a typed contract: round trip, runs of older skpipe versions, one owner."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline import SkpipeError
from pipeline.run.config import RunConfig, open_run, write_config
from pipeline.train.fit import TrainConfig

REPO = Path(__file__).resolve().parents[3]


def config(**kw):
    return RunConfig(TrainConfig("stgcnpp", split="1", feats="b", frames=32), "/data/cache", "abc", 3,
                     ("run", "jump", "sit"), **kw)


def test_round_trip(tmp_path):
    cfg = config(world_size=2, versions={"torch": "x"})
    write_config(tmp_path, cfg)
    run = open_run(tmp_path)
    assert run.config == cfg and run.model == "stgcnpp" and run.split == "1"
    assert run.config.model_args.num_classes == 3 and run.config.input_spec().frames == 32
    assert run.config.train.cache == "/data/cache"  # the resolved cache, whatever was typed


def test_a_run_of_skpipe_0_1_opens_with_defaults(tmp_path):
    """0.1 stored the split as an int and had no streams, recipes or cache dtype."""
    train = {"model": "lstm", "cache": "cache", "split": 1, "epochs": 50, "batch_size": 32, "lr": 1e-3,
             "weight_decay": 1e-4, "dropout": 0.5, "frames": 300, "precision": "fp32", "threads": 2,
             "workers": 0, "seed": 0, "patience": 0, "lr_patience": 5, "lr_factor": 0.5,
             "loader": "auto", "checkpoint_every": 10, "out": "runs", "device": "auto"}
    (tmp_path / "config.json").write_text(json.dumps(
        {"train": train, "manifest_hash": "h", "cache": "/abs/cache", "num_classes": 2,
         "class_names": ["a", "b"], "parameters": 10}))
    cfg = open_run(tmp_path).config
    assert cfg.train.split == "1" and cfg.train.feats == "j" and cfg.cache_dtype == "float16"
    assert cfg.train.cache == "/abs/cache"


@pytest.mark.parametrize("text", ["{", "[]", '{"train": {"model": "lstm", "wings": 2}}',
                                  '{"train": {"model": "lstm"}}',
                                  '{"train": {"model": "gru"}, "cache": "c", "manifest_hash": "h", '
                                  '"num_classes": 2, "class_names": ["a", "b"]}'])
def test_malformed_configs_are_one_line(tmp_path, text):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(SkpipeError, match="config.json") as e:
        open_run(tmp_path)
    assert "\n" not in str(e.value)


def test_only_the_run_module_reads_config_json():
    readers = [p.relative_to(REPO).as_posix() for p in (REPO / "pipeline").rglob("*.py")
               if '"config.json"' in p.read_text() or "CONFIG_NAME" in p.read_text()]
    assert readers == ["pipeline/run/config.py"]


def test_a_changed_option_is_part_of_the_config():
    assert config() != replace(config(), train=replace(config().train, lr=0.5))


def test_default_threads_are_the_cores_others_leave_free(monkeypatch):
    """One thread per free core: beside a busy core, two threads ran at 0.31 of their speed."""
    from pipeline.run import runtime

    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    # (idle, total) of the machine and this process's own time, before and after the sample
    for machine, own, want in (([(0, 0), (100, 200)], [0, 0], 1),  # another process on one core
                               ([(0, 0), (190, 200)], [0, 0], 2),  # both idle, some noise
                               ([(0, 0), (0, 200)], [0, 200], 2),  # busy, but with our own work
                               ([(0, 0), (5, 200)], [0, 0], 1),  # both busy: still one thread
                               ([None, None], [0, 0], 2)):  # no /proc/stat: every usable core
        m, o = iter(machine), iter(own)
        monkeypatch.setattr(runtime, "_cpu_jiffies", lambda m=m: next(m))
        monkeypatch.setattr(runtime, "_own_jiffies", lambda o=o: next(o))
        assert runtime.default_threads() == want, (machine, own)
    m, o = iter([(0, 0), (200, 200)]), iter([0, 0])
    monkeypatch.setattr(runtime, "_cpu_jiffies", lambda: next(m))
    monkeypatch.setattr(runtime, "_own_jiffies", lambda: next(o))
    assert runtime.default_threads(local_world=2) == 1  # two ranks share the free cores


def test_others_busy_reads_this_machine():
    from pipeline.run import runtime

    busy = runtime.others_busy(0.05)
    assert busy is None or 0.0 <= busy <= (runtime.os.cpu_count() or 1)
