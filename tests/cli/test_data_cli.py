"""The data commands through click's CliRunner: the user's path and the user's mistakes."""

import os
import pickle
import signal

import pandas as pd
import pytest
from click.testing import CliRunner

from cli.main import main
from tests.conftest import make_ann, write_pickle


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def assert_one_line_error(result, pattern):
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    import re

    assert re.search(pattern, lines[0]), lines[0]


def test_user_path(tmp_path):
    raw, cache = tmp_path / "raw.pkl", tmp_path / "cache"
    r = run("synth", raw, "--classes", 3, "--per-class", 12)
    assert r.exit_code == 0 and raw.exists()
    r = run("ingest", raw, "--cache", cache)
    assert r.exit_code == 0, r.output
    assert "samples" in r.output and "36" in r.output and "size on disk" in r.output
    r = run("build-splits", "--cache", cache)
    assert r.exit_code == 0 and "official" in r.output
    df = pd.read_parquet(cache / "splits.parquet")
    assert list(df.columns) == ["sample", "frame_dir", "label", "split", "subset"]
    assert set(df["subset"]) == {"train", "val", "test"}
    r = run("info", "--cache", cache)
    assert r.exit_code == 0 and "unchanged" in r.output and "ApplyEyeMakeup" in r.output


def test_cache_from_environment(tmp_path):
    raw = write_pickle(tmp_path / "raw.pkl", [make_ann("v_A_g01_c01"), make_ann("v_B_g02_c01", 1)])
    env = {"SKPIPE_CACHE": str(tmp_path / "envcache")}
    assert run("ingest", raw, env=env).exit_code == 0
    assert (tmp_path / "envcache" / "manifest.json").exists()
    assert run("info", env=env).exit_code == 0


def test_info_flags_a_changed_source(tmp_path):
    raw = write_pickle(tmp_path / "raw.pkl", [make_ann("v_A_g01_c01")])
    run("ingest", raw, "--cache", tmp_path / "c")
    write_pickle(raw, [make_ann("v_A_g01_c01", seed=9)])  # same size, other content
    r = run("info", "--cache", tmp_path / "c")
    assert "STALE" in r.output and "content hash differs" in r.output
    write_pickle(raw, [make_ann("v_A_g01_c01", t=11)])
    assert "size" in run("info", "--cache", tmp_path / "c").output


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/skpipe-pwned",))


@pytest.mark.parametrize("content, pattern", [
    (None, "no such file"),
    (b"hello world, not a pickle", "not a valid pickle"),
    (pickle.dumps([make_ann()])[:200], "truncated pickle|not a valid pickle"),
    (pickle.dumps(Evil()), "refused to load global"),
    (pickle.dumps({"a": 1}), "expected a dict with 'annotations'"),
    (pickle.dumps([{"frame_dir": "v_X_g01_c01", "label": 0}]), r"annotation 0 \(v_X_g01_c01\): missing"),
])
def test_ingest_bad_input_one_line_nothing_written(tmp_path, content, pattern):
    raw = tmp_path / "raw.pkl"
    if content is not None:
        raw.write_bytes(content)
    r = run("ingest", raw, "--cache", tmp_path / "cache")
    assert_one_line_error(r, pattern)
    assert not (tmp_path / "cache").exists()
    assert not os.path.exists("/tmp/skpipe-pwned")


def test_existing_cache_needs_force(tmp_path):
    raw = write_pickle(tmp_path / "raw.pkl", [make_ann()])
    assert run("ingest", raw, "--cache", tmp_path / "c").exit_code == 0
    assert_one_line_error(run("ingest", raw, "--cache", tmp_path / "c"), "already exists")
    assert run("ingest", raw, "--cache", tmp_path / "c", "--force").exit_code == 0
    assert run("build-splits", "--cache", tmp_path / "c").exit_code == 0
    assert_one_line_error(run("build-splits", "--cache", tmp_path / "c"), "already exists")


def test_commands_refuse_missing_cache(tmp_path):
    assert_one_line_error(run("build-splits", "--cache", tmp_path / "none"), "no cache at")
    assert_one_line_error(run("info", "--cache", tmp_path / "none"), "no cache at")
    assert_one_line_error(run("synth", tmp_path / "s.pkl", "--classes", 500), "--classes")


def test_sigterm_during_ingest_leaves_nothing(tmp_path, monkeypatch):
    raw = write_pickle(tmp_path / "raw.pkl", [make_ann(f"v_A_g01_c{i:02d}", seed=i) for i in range(40)])
    import pipeline.cache as cache_mod

    real = cache_mod.preprocess_batch

    def preprocess_then_kill(*a, **k):
        out = real(*a, **k)  # the cache directory is half-written now
        os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(cache_mod, "preprocess_batch", preprocess_then_kill)
    r = CliRunner().invoke(main, ["ingest", str(raw), "--cache", str(tmp_path / "c")])
    assert r.exit_code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.pkl"]


def test_train_errors_are_one_line(tmp_path):
    raw = write_pickle(tmp_path / "raw.pkl", [make_ann(f"v_A_g{g:02d}_c01", seed=g) for g in range(1, 9)])
    run("ingest", raw, "--cache", tmp_path / "c")
    assert_one_line_error(run("train", "stgcn", "--cache", tmp_path / "c"), "no splits")
    assert_one_line_error(run("train", "lstm", "--cache", tmp_path / "none"), "no cache at")
    assert_one_line_error(run("train", "lstm", "--cache", tmp_path / "c", "--precision", "fp16",
                              "--device", "cpu"), "fp16 needs a CUDA device")


def test_nproc_is_stripped_in_both_spellings():
    from cli.train import without_option

    args = ["train", "stgcn", "--nproc", "2", "--epochs", "3"]
    assert without_option(args, "--nproc") == ["train", "stgcn", "--epochs", "3"]
    assert without_option(["train", "lstm", "--nproc=2"], "--nproc") == ["train", "lstm"]
