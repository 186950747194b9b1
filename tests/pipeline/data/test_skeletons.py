"""Other skeletons from ingest to predict: layouts detected by V, 3D pickles without scores, two
persons kept by motion, PYSKL's 3D pre-normalisation, and one-line refusals."""

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from models.layouts import KINECT20, LAYOUTS, Skeleton
from pipeline.data.cache import IngestConfig, ingest, open_cache
from pipeline.data.splits import write_splits
from pipeline.inputs.augment import normalize, prenormalize_3d
from tests.cli.test_data_cli import assert_one_line_error
from tests.conftest import make_ann, write_pickle


def ann3d(name, label, m=1, t=12, v=20, seed=0, moving=0):
    """A 3D annotation in PYSKL's NTU form: keypoint (M, T, V, 3) metres, no score, no img_shape;
    slot `moving` moves, the others stand still."""
    rng = np.random.default_rng(seed)
    kp = np.repeat(rng.normal(0, 0.3, (m, 1, v, 3)), t, axis=1).astype(np.float32) + 2.0
    kp[moving] += np.linspace(0, 1, t)[:, None, None] * rng.normal(0, 0.5, (1, v, 3))
    return {"frame_dir": name, "label": label, "keypoint": kp, "total_frames": t}


def pickle3d(path, n=12, m=1, classes=2):
    anns = [ann3d(f"S001C001P{i:03d}R001A{i % classes + 1:03d}", i % classes, m=m, seed=i, moving=i % m)
            for i in range(n)]
    split = {"xsub_train": [a["frame_dir"] for a in anns[: n * 2 // 3]],
             "xsub_val": [a["frame_dir"] for a in anns[n * 2 // 3 :]]}
    return write_pickle(path, {"split": split, "annotations": anns})


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_each_layout_is_detected_from_its_number_of_joints(tmp_path, name):
    v = len(LAYOUTS[name]["joints"])
    anns = [make_ann(f"v_A_g01_c0{i}", 0, t=8, seed=i) for i in range(2)]
    for a in anns:  # make_ann draws COCO-17 joints: widen to this layout's V
        a["keypoint"] = np.resize(a["keypoint"], (1, 8, v, 2))
        a["keypoint_score"] = np.resize(a["keypoint_score"], (1, 8, v))
    raw = write_pickle(tmp_path / "raw.pkl", anns)
    ingest(raw, tmp_path / "cache")
    cache = open_cache(tmp_path / "cache")
    assert cache.skeleton.layout["name"] == name and cache.skeleton.dims == 2
    shape = cache.manifest.array["shape"]
    assert shape == [2, 300, v, 3]
    if name == "coco17":
        assert cache.manifest.skeleton == {}  # the seed's cache, exactly as before


def test_3d_pickle_without_scores(tmp_path):
    ingest(pickle3d(tmp_path / "ucla.pkl"), tmp_path / "cache")
    cache = open_cache(tmp_path / "cache")
    sk = cache.skeleton
    assert (sk.layout["name"], sk.dims, sk.score, sk.persons) == ("kinect20", 3, False, 1)
    x = cache.open_array()[:]
    assert x.shape == (12, 300, 20, 3)
    raw = ann3d("S001C001P000R001A001", 0, seed=0)["keypoint"][0]
    np.testing.assert_allclose(x[0, :12], raw, rtol=1e-3)  # metres, unscaled (float16 cache)
    assert not x[0, 12:].any()


def test_two_persons_are_kept_most_moving_first(tmp_path):
    ingest(pickle3d(tmp_path / "ntu.pkl", m=2), tmp_path / "cache")  # 3D with two: both by default
    cache = open_cache(tmp_path / "cache")
    assert cache.skeleton.persons == 2
    x = cache.open_array()[:].astype(np.float32)  # (N, M, T, V, C)
    assert x.shape == (12, 2, 300, 20, 3)
    motion = x[:, :, :12].std(axis=2).sum(axis=(2, 3))  # (N, M)
    assert (motion[:, 0] > motion[:, 1]).all()
    assert open_cache(tmp_path / "cache").index["person"].tolist() == [i % 2 for i in range(12)]


def test_one_person_of_a_two_person_pickle_with_persons_1(tmp_path):
    ingest(pickle3d(tmp_path / "ntu.pkl", m=2), tmp_path / "cache", IngestConfig(persons=1))
    assert open_cache(tmp_path / "cache").manifest.array["shape"] == [12, 300, 20, 3]


def test_prenormalize_3d_by_hand():
    """Centre joint to the origin in the first frame; spine along +z, shoulders along +x."""
    sk = Skeleton(KINECT20, dims=3, score=False)
    x = np.zeros((1, 2, 20, 3), np.float32)
    rng = np.random.default_rng(0)
    x[0, :] = rng.normal(0, 1, (20, 3)) + [5, 5, 5]
    out = prenormalize_3d(x, sk)
    c, (bottom, top), (right, left) = KINECT20["center"], KINECT20["spine"], KINECT20["shoulders"]
    np.testing.assert_allclose(out[0, 0, c], 0, atol=1e-5)
    spine = out[0, 0, top] - out[0, 0, bottom]
    np.testing.assert_allclose(spine / np.linalg.norm(spine), [0, 0, 1], atol=1e-5)
    shoulders = out[0, 0, left] - out[0, 0, right]
    assert abs(shoulders[1]) < 1e-5 and shoulders[0] > 0  # in the x-z plane, pointing +x
    np.testing.assert_allclose(np.linalg.norm(out[0, 1] - out[0, 1, c], axis=-1),
                               np.linalg.norm(x[0, 1] - x[0, 1, c], axis=-1), rtol=1e-5)  # rigid
    np.testing.assert_array_equal(normalize(x, "pyskl", sk), out)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_bad_skeleton_inputs_are_one_line_and_write_nothing(tmp_path):
    odd = [make_ann("v_A_g01_c01", 0, t=8)]
    odd[0]["keypoint"] = np.zeros((1, 8, 19, 2), np.float16) + 1
    odd[0]["keypoint_score"] = np.ones((1, 8, 19), np.float16)
    raw = write_pickle(tmp_path / "odd.pkl", odd)
    assert_one_line_error(run("ingest", raw, "--cache", tmp_path / "c"), "19 joints match no built-in")
    assert_one_line_error(run("ingest", raw, "--cache", tmp_path / "c", "--layout", "coco17"),
                          "layout coco17 has 17 joints; the pickle's keypoints have 19")
    (tmp_path / "cycle.toml").write_text('name = "x"\njoints = ["a", "b"]\nparents = [1, 0]\ncenter = 0\n'
                                         'pairs = []\n')
    assert_one_line_error(run("ingest", raw, "--cache", tmp_path / "c", "--layout", tmp_path / "cycle.toml"),
                          "cycle through joint 0")
    assert_one_line_error(run("ingest", raw, "--cache", tmp_path / "c", "--persons", 3), "--persons")
    zero = pickle3d(tmp_path / "zero.pkl")
    import pickle
    data = pickle.loads(zero.read_bytes())
    data["annotations"][3]["keypoint"][:] = 0
    write_pickle(zero, data)
    assert_one_line_error(run("ingest", zero, "--cache", tmp_path / "c"),
                          "annotation 3 .* every coordinate is zero")
    assert not (tmp_path / "c").exists()


def test_a_3d_two_person_run_end_to_end(tmp_path):
    """Train, evaluate and predict on a 3D two-person cache; a 2D pickle is refused by predict."""
    ingest(pickle3d(tmp_path / "ntu.pkl", n=24, m=2), tmp_path / "cache")
    write_splits(open_cache(tmp_path / "cache"))
    r = run("train", "stgcnpp", "--cache", tmp_path / "cache", "--split", "xsub", "--epochs", 1,
            "--frames", 8, "--threads", 1, "--normalize", "pyskl", "--rotate", 10, "--flip", 0.5,
            "--feats", "b", "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run("evaluate", run_dir, "--subset", "test").exit_code == 0
    r = run("predict", run_dir, tmp_path / "ntu.pkl", "--json", "--window", 4)
    assert r.exit_code == 0, r.output
    assert r.output.count('"frame_dir"') == 24
    r = run("predict", run_dir, tmp_path / "ntu.pkl")  # NTU-style names, no classes list
    assert r.exit_code == 0 and "no class names to compare with, so no agreement is reported" in r.output
    flat = write_pickle(tmp_path / "flat.pkl", [make_ann("v_A_g01_c01", 0, t=8)])
    assert_one_line_error(run("predict", run_dir, flat),
                          "holds 17 joints in 2D with scores; .* reads 20 joints in 3D")


def test_the_python_api_on_a_3d_two_person_export(tmp_path):
    """skpipe.load on an ONNX export of a 3D two-person run, fed a pickle, a dict and arrays."""
    pytest.importorskip("onnxruntime")
    import skpipe
    from pipeline.infer.export import export_run
    from pipeline.source.raw import read_raw

    ingest(pickle3d(tmp_path / "ntu.pkl", n=24, m=2), tmp_path / "cache")
    write_splits(open_cache(tmp_path / "cache"))
    r = run("train", "stgcnpp", "--cache", tmp_path / "cache", "--split", "xsub", "--epochs", 1,
            "--frames", 8, "--threads", 1, "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    export_run(run_dir, "onnx")
    m = skpipe.load(run_dir / "export" / "model.onnx")
    assert (m.card.input.persons, m.card.input.dims, m.card.input.layout["name"]) == (2, 3, "kinect20")
    on_run = skpipe.load(run_dir).predict(tmp_path / "ntu.pkl")
    on_onnx = m.predict(tmp_path / "ntu.pkl")
    for a, b in zip(on_run, on_onnx, strict=True):
        assert a["frame_dir"] == b["frame_dir"] and a["top"][0]["class"] == b["top"][0]["class"]
        assert a["top"][0]["probability"] == pytest.approx(b["top"][0]["probability"], abs=1e-5)
    ann = read_raw(tmp_path / "ntu.pkl").annotations[0]
    assert m.predict(ann)[0]["top"] == m.predict((ann["keypoint"], None))[0]["top"]
    with pytest.raises(skpipe.SkpipeError, match="17 joints in 2D"):
        m.predict(make_ann())


def test_a_3d_manifest_says_what_ingest_did(tmp_path):
    ingest(pickle3d(tmp_path / "ntu.pkl", n=6, m=2), tmp_path / "cache")
    p = open_cache(tmp_path / "cache").manifest.preprocessing
    assert p["features"] == ["x", "y", "z"] and p["normalize"].startswith("none")
    assert "img_shape" not in p["normalize"] and "motion" in p["person"]


def test_a_3d_index_holds_null_where_there_is_no_value(tmp_path):
    """No scores, no image and no UCF101 group in an NTU-named 3D pickle: null, never 0 or -1."""
    import pandas as pd

    ingest(pickle3d(tmp_path / "ntu.pkl", n=6), tmp_path / "cache")
    index = pd.read_parquet(tmp_path / "cache" / "index.parquet")
    for col in ("mean_score", "img_h", "img_w", "group", "clip"):
        assert index[col].isna().all(), col
    assert index["n_persons"].notna().all() and (index["valid_frames"] > 0).all()
