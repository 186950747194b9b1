"""Ingest: round trips, the real UCF101 samples, atomic and refused overwrites."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import SkpipeError
from pipeline.data.cache import IngestConfig, ingest, open_cache
from pipeline.data.preprocess import preprocess
from pipeline.source.raw import read_raw
from tests.conftest import TEST_DATA, make_ann, tiny_dataset, write_pickle


def test_round_trip_equals_preprocessing(tmp_path, tiny_pickle):
    s = ingest(tiny_pickle, tmp_path / "cache", IngestConfig(chunk=5))
    cache = open_cache(tmp_path / "cache")
    arr = cache.open_array()[:]  # (N, 300, 17, 3)
    anns = read_raw(tiny_pickle).annotations
    assert arr.shape == (len(anns), 300, 17, 3) and arr.dtype == np.float16
    assert s.samples == len(anns) and s.classes == 3
    for i, a in enumerate(anns):
        want, info = preprocess(a["keypoint"], a["keypoint_score"], a["img_shape"])
        np.testing.assert_array_equal(arr[i], want.astype(np.float16))
        row = cache.index.iloc[i]
        assert row["sample"] == i and row["frame_dir"] == a["frame_dir"]
        assert row["person"] == info.person and row["valid_frames"] == min(a["keypoint"].shape[1], 300)
    assert list(cache.manifest.class_names) == ["Class0", "Class1", "Class2"]
    assert s.longer_than_max == int((cache.index["keypoint_frames"] > 300).sum()) > 0


def test_a_cache_written_before_the_column_rename_reads_with_todays_names(tmp_path, tiny_pickle):
    """Caches before the word table name the keypoint array's length `frames`."""
    import dataclasses
    import hashlib
    import shutil

    from pipeline.data.cache import read_manifest, write_manifest

    ingest(tiny_pickle, tmp_path / "new")
    shutil.copytree(tmp_path / "new", tmp_path / "old")
    index = pd.read_parquet(tmp_path / "old" / "index.parquet").rename(columns={"keypoint_frames": "frames"})
    index.to_parquet(tmp_path / "old" / "index.parquet", index=False)
    m = read_manifest(tmp_path / "old")
    sha = hashlib.sha256((tmp_path / "old" / "index.parquet").read_bytes()).hexdigest()
    write_manifest(tmp_path / "old", dataclasses.replace(m, tables={**m.tables, "index.parquet": sha}))
    old, new = open_cache(tmp_path / "old").index, open_cache(tmp_path / "new").index
    assert "frames" not in old.columns
    pd.testing.assert_frame_equal(old, new)


def test_float32_cache_is_exact(tmp_path, tiny_pickle):
    ingest(tiny_pickle, tmp_path / "c32", IngestConfig(dtype="float32"))
    arr = open_cache(tmp_path / "c32").open_array()
    a = read_raw(tiny_pickle).annotations[3]
    np.testing.assert_array_equal(arr[3], preprocess(a["keypoint"], a["keypoint_score"], (256, 340))[0])


def test_real_mini_ucf101_matches_hand_computation(tmp_path):
    ingest(TEST_DATA / "mini_ucf101.pkl", tmp_path / "cache")
    cache = open_cache(tmp_path / "cache")
    raw = read_raw(TEST_DATA / "mini_ucf101.pkl").annotations
    arr = cache.open_array()[:]
    assert arr.shape == (6, 300, 17, 3)
    assert cache.manifest.class_names == ["ApplyEyeMakeup"]
    assert cache.manifest.source_splits == {"train1": 3, "test1": 3}
    for i, a in enumerate(raw):
        kp, sc = a["keypoint"].astype(np.float64), a["keypoint_score"].astype(np.float64)
        means = [sc[m].sum() / sc[m].size for m in range(kp.shape[0])]  # by hand: plain sums
        m = max(range(len(means)), key=lambda j: (means[j], -j))
        t = kp.shape[1]
        for (tt, v) in [(0, 0), (t // 2, 9), (min(t, 300) - 1, 16)]:
            want = [kp[m, tt, v, 0] / 340, kp[m, tt, v, 1] / 256, sc[m, tt, v]]
            np.testing.assert_allclose(arr[i, tt, v], want, rtol=2e-3, atol=1e-3)
        assert not arr[i, min(t, 300):].any()  # padded with zeros
        assert cache.index.loc[i, "person"] == m and cache.index.loc[i, "img_w"] == 340


def test_real_single_annotation_example(tmp_path):
    ingest(TEST_DATA / "example_UCF101_skeleton.pkl", tmp_path / "cache")
    cache = open_cache(tmp_path / "cache")
    a = read_raw(TEST_DATA / "example_UCF101_skeleton.pkl").annotations[0]
    sc = a["keypoint_score"].astype(np.float64)
    assert cache.index.loc[0, "person"] == int(sc[1].mean() > sc[0].mean())
    assert cache.index.loc[0, "n_persons"] == 2 and cache.index.loc[0, "valid_frames"] == 163


def test_nonfinite_are_zeroed_and_counted(tmp_path):
    a = make_ann("v_N_g01_c01", t=5)
    a["keypoint"][0, 1, 3, 0] = np.nan
    a["keypoint"][0, 2, 4, 1] = np.inf
    s = ingest(write_pickle(tmp_path / "n.pkl", [a]), tmp_path / "cache")
    arr = open_cache(tmp_path / "cache").open_array()
    assert s.nonfinite == 2
    assert not arr[0, 1, 3].any() and not arr[0, 2, 4].any()


def test_existing_cache_is_refused_then_replaced_with_force(tmp_path, tiny_pickle):
    ingest(tiny_pickle, tmp_path / "cache")
    before = (tmp_path / "cache" / "manifest.json").read_bytes()
    with pytest.raises(SkpipeError, match="already exists.*--force"):
        ingest(tiny_pickle, tmp_path / "cache")
    assert (tmp_path / "cache" / "manifest.json").read_bytes() == before
    other = write_pickle(tmp_path / "one.pkl", [make_ann()])
    ingest(other, tmp_path / "cache", force=True)
    assert open_cache(tmp_path / "cache").manifest.num_samples == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cache.tmp")]


def test_bad_input_writes_nothing(tmp_path):
    bad = write_pickle(tmp_path / "bad.pkl", [make_ann(), {"frame_dir": "x"}])
    with pytest.raises(SkpipeError):
        ingest(bad, tmp_path / "cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pkl"]


def test_interrupted_ingest_keeps_the_previous_cache(tmp_path):
    big = write_pickle(tmp_path / "big.pkl", tiny_dataset(classes=4, groups=8, clips=2))
    ingest(big, tmp_path / "cache")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}

    def interrupt(stage, done, total):
        if stage == "convert":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(big, tmp_path / "cache", IngestConfig(chunk=8), force=True, progress=interrupt)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.pkl", "cache"]
    open_cache(tmp_path / "cache")


def test_leftovers_of_a_killed_ingest_are_swept(tmp_path, tiny_pickle):
    stale = tmp_path / ".cache.tmp-999999999-abc"  # a pid that cannot be alive
    (stale / "skeletons.zarr").mkdir(parents=True)
    ingest(tiny_pickle, tmp_path / "cache")
    assert not stale.exists()


def test_unwritable_cache_location(tmp_path, tiny_pickle):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SkpipeError, match="not a directory|cannot create"):
        ingest(tiny_pickle, tmp_path / "afile" / "cache")
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(SkpipeError, match="cannot write"):
            ingest(tiny_pickle, ro / "cache")


def test_open_cache_refuses_a_mismatched_cache(tmp_path, tiny_pickle):
    ingest(tiny_pickle, tmp_path / "cache")
    path = tmp_path / "cache" / "manifest.json"
    m = json.loads(path.read_text())
    m["array"]["shape"][0] += 1
    path.write_text(json.dumps(m))
    with pytest.raises(SkpipeError, match="manifest says"):
        open_cache(tmp_path / "cache")
    m["schema_version"] = 99
    path.write_text(json.dumps(m))
    with pytest.raises(SkpipeError, match="schema version 99"):
        open_cache(tmp_path / "cache")
    with pytest.raises(SkpipeError, match="no cache at"):
        open_cache(tmp_path / "elsewhere")


def test_index_is_readable_with_pandas(tmp_path, tiny_pickle):
    ingest(tiny_pickle, tmp_path / "cache")
    df = pd.read_parquet(tmp_path / "cache" / "index.parquet")
    for col in ["sample", "frame_dir", "label", "class_name", "group", "clip", "total_frames",
                "valid_frames", "n_persons", "person", "mean_score", "img_h", "img_w"]:
        assert col in df.columns
    assert df["group"].between(1, 4).all()


FULL_DISK = r"""
import errno, os, sys, threading
import zarr.storage._local as local

real, count, lock, limit = local._put, [0], threading.Lock(), int(sys.argv[3])

def put(path, value, exclusive=False):
    with lock:
        count[0] += 1
        late = count[0] > limit
    if late:  # the disk fills up after a few chunks, while others are in flight
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(path, value, exclusive)

local._put = put
from cli.main import run
sys.argv = ["skpipe", "ingest", sys.argv[1], "--cache", sys.argv[2], "--chunk", "4"]
run()
"""


@pytest.mark.parametrize("after", [0, 3, 12])
def test_a_full_disk_during_ingest_is_one_line_and_leaves_nothing(tmp_path, after):
    import subprocess
    import sys

    from pipeline.source.synth import SynthConfig, write_synth

    write_synth(tmp_path / "raw.pkl", SynthConfig(classes=6, per_class=20, seed=0))
    out = tmp_path / "out"
    out.mkdir()
    r = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path / "raw.pkl"), str(out / "cache"),
                        str(after)], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parents[3])
    assert r.returncode == 1
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert lines == [f"Error: cannot write {out / 'cache'}: No space left on device (the previous content "
                     "is unchanged)"], r.stderr[-2000:]
    assert list(out.iterdir()) == []  # no temporary directory left behind


def test_values_beyond_float16_are_refused_at_ingest_not_stored_as_inf(tmp_path):
    from pipeline.data.cache import IngestConfig
    from tests.conftest import make_ann
    from tests.pipeline.data.test_skeletons import ann3d

    far = ann3d("S001C001P001R001A001", 0)
    far["keypoint"] = far["keypoint"] * 1e6  # millimetres of a far-off point
    flat = make_ann("v_A_g01_c01", img_shape=(1, 1))
    flat["keypoint"] = np.full_like(flat["keypoint"], 1e5, dtype=np.float32)  # pixels over a 1x1 image
    for name, anns in (("3d", [ann3d("S001C001P002R001A001", 0, seed=1), far]),
                       ("2d", [make_ann("v_A_g02_c01", seed=1), flat])):
        raw = write_pickle(tmp_path / f"{name}.pkl", anns)
        with pytest.raises(SkpipeError, match=r"annotation 1 .* beyond float16's range .* --dtype float32"):
            ingest(raw, tmp_path / name)
        assert not (tmp_path / name).exists()
        ingest(raw, tmp_path / f"{name}32", IngestConfig(dtype="float32"))  # the way out works
        assert np.isfinite(open_cache(tmp_path / f"{name}32").open_array()[:]).all()
