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
    assert r.output.splitlines()[0].strip() == f"Ingested into {cache}"  # no blank line first
    r = run("build-splits", "--cache", cache)
    assert r.exit_code == 0 and "official" in r.output
    df = pd.read_parquet(cache / "splits.parquet")
    assert list(df.columns) == ["sample", "frame_dir", "label", "split", "subset", "group"]
    assert set(df["subset"]) == {"train", "val", "test"}
    r = run("info", "--cache", cache)
    assert r.exit_code == 0 and "unchanged" in r.output and "ApplyEyeMakeup" in r.output
    assert "Cache cache" not in r.output


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
    import pipeline.data.cache as cache_mod

    real = cache_mod.preprocess_batch

    def preprocess_then_kill(*a, **k):
        out = real(*a, **k)  # the cache directory is half-written now
        os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(cache_mod, "preprocess_batch", preprocess_then_kill)
    r = CliRunner().invoke(main, ["ingest", str(raw), "--cache", str(tmp_path / "c")])
    assert r.exit_code == 130  # like Ctrl-C: one line, what was kept, how to continue
    assert "Interrupted: nothing half-written was kept" in r.output and "Aborted" not in r.output
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


def _named_pickle(tmp_path, split):
    names = sorted({n for v in split.values() for n in v})
    anns = [make_ann(n, label=i % 2, seed=i, t=12) for i, n in enumerate(names)]
    return write_pickle(tmp_path / "named.pkl", {"split": split, "annotations": anns})


def test_protocols_by_name_through_the_cli(tmp_path):
    names = [f"S001C00{c}P00{p}R001A00{a}" for c in (1, 2) for p in (1, 2, 3) for a in (1, 2)]
    split = {"xview_train": [n for n in names if "C001" in n], "xview_val": [n for n in names if "C002" in n]}
    raw, cache = _named_pickle(tmp_path, split), tmp_path / "cache"
    assert run("ingest", raw, "--cache", cache).exit_code == 0
    r = run("build-splits", "--cache", cache, "--val-fraction", 0.3)
    assert r.exit_code == 0 and "xview" in r.output and "official" in r.output
    assert "ntu performer" in r.output
    r = run("info", "--cache", cache)
    assert "xview_train / xview_val" in r.output
    r = run("train", "stgcn", "--cache", cache, "--split", "xsub", "--epochs", 1, "--out", tmp_path / "runs")
    assert_one_line_error(r, r"no protocol 'xsub'.*they have: xview")
    assert not (tmp_path / "runs").exists()
    r = run("train", "stgcn", "--cache", cache, "--split", "xview", "--epochs", 1, "--frames", 8,
            "--threads", 1, "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    names = [p.name.split("-")[:4] for p in (tmp_path / "runs").iterdir()]
    assert names == [["named", "stgcn", "j", "xview"]]  # dataset, model, stream, protocol


@pytest.mark.parametrize("split, args, pattern", [
    ({"fold_a": ["x0", "x1"], "fold_b": ["x2", "x3"]}, [], r"fold_a, fold_b fit no protocol.*--protocol"),
    ({"fold_a": ["x0", "x1"], "fold_b": ["x2"]}, ["--protocol", "f=fold_a,fold_c"], "no split key fold_c"),
    ({"train": ["x0", "x1"], "test": ["x1", "x2"]}, [], "x1 is in both train and test"),
    ({"train": ["x0", "x1"], "test": ["x2"]}, ["--group-by", "("], "not a valid regex"),
    ({"train": ["x0", "x1"], "test": ["x2"]}, ["--group-by", "zz"], "matches no clip"),
])
def test_bad_protocols_are_one_line_and_write_nothing(tmp_path, split, args, pattern):
    raw, cache = _named_pickle(tmp_path, split), tmp_path / "cache"
    assert run("ingest", raw, "--cache", cache).exit_code == 0
    assert_one_line_error(run("build-splits", "--cache", cache, *args), pattern)
    assert not (cache / "splits.parquet").exists()


def test_explicit_protocol_names_a_pair(tmp_path):
    raw = _named_pickle(tmp_path, {"fold_a": ["x0", "x1", "x2"], "fold_b": ["x3", "x4"]})
    run("ingest", raw, "--cache", tmp_path / "c")
    r = run("build-splits", "--cache", tmp_path / "c", "--protocol", "cv=fold_a,fold_b")
    assert r.exit_code == 0 and "fold_a / fold_b" in r.output
    df = pd.read_parquet(tmp_path / "c" / "splits.parquet")
    assert set(df["split"]) == {"cv"} and set(df.loc[df["subset"] == "test", "frame_dir"]) == {"x3", "x4"}


def test_old_schema_splits_are_refused_then_rebuilt(tmp_path):
    raw = _named_pickle(tmp_path, {"train1": ["v_A_g01_c01", "v_A_g02_c01"], "test1": ["v_A_g03_c01"]})
    cache = tmp_path / "c"
    run("ingest", raw, "--cache", cache)
    run("build-splits", "--cache", cache)
    import json

    meta = json.loads((cache / "splits.json").read_text())
    (cache / "splits.json").write_text(json.dumps({"manifest_hash": meta["manifest_hash"],
                                                   "methods": {"1": "official"}}))
    r = run("train", "lstm", "--cache", cache, "--epochs", 1, "--out", tmp_path / "runs")
    assert_one_line_error(r, r"older skpipe.*build-splits --force")
    assert run("build-splits", "--cache", cache, "--force").exit_code == 0
    assert "Protocols" in run("info", "--cache", cache).output


@pytest.mark.parametrize("url, pattern", [
    ("foo://x/cache", "unknown location scheme"),
    ("s3://bucket/cache", "needs a package that is not installed"),
])
def test_unknown_or_uninstalled_locations_are_one_line(url, pattern):
    pytest.importorskip("fsspec")
    if url.startswith("s3") and __import__("importlib").util.find_spec("s3fs"):
        pytest.skip("s3fs is installed here")
    assert_one_line_error(run("info", "--cache", url), pattern)


def test_a_typo_in_the_input_is_named_before_the_cache(tmp_path):
    raw = write_pickle(tmp_path / "raw.pkl", [make_ann("v_A_g01_c01")])
    run("ingest", raw, "--cache", tmp_path / "c")
    r = run("ingest", tmp_path / "raw.pk", "--cache", tmp_path / "c")
    assert_one_line_error(r, "raw.pk: no such file")
