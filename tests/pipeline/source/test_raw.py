"""Reading the raw pickle: accepted forms, and every bad input refused by name."""

import os
import pickle

import numpy as np
import pytest

from pipeline import SkpipeError
from pipeline.source.raw import parse_frame_dir, read_raw
from tests.conftest import TEST_DATA, make_ann, write_pickle


def test_accepts_dict_list_and_single(tmp_path):
    anns = [make_ann("v_A_g01_c01"), make_ann("v_A_g02_c01")]
    obj = {"split": {"train1": ["v_A_g01_c01"]}, "annotations": anns}
    d = read_raw(write_pickle(tmp_path / "a.pkl", obj))
    assert len(d.annotations) == 2 and d.splits == {"train1": ["v_A_g01_c01"]}
    assert len(read_raw(write_pickle(tmp_path / "b.pkl", anns)).annotations) == 2
    assert len(read_raw(write_pickle(tmp_path / "c.pkl", anns[0])).annotations) == 1
    assert len(d.sha256) == 64 and d.size == (tmp_path / "a.pkl").stat().st_size


@pytest.mark.parametrize("name", ["mini_ucf101.pkl", "example_UCF101_skeleton.pkl"])
def test_real_samples_load(name):
    d = read_raw(TEST_DATA / name)
    assert all(a["keypoint"].dtype == np.float16 for a in d.annotations)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_in_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"annotations": [Evil(marker)]}))
    with pytest.raises(SkpipeError, match="refused to load global 'posix.system'"):
        read_raw(path)
    assert not marker.exists()


def test_builtins_that_run_code_are_refused(tmp_path):
    path = tmp_path / "eval.pkl"
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(SkpipeError, match="refused to load global 'builtins.eval'"):
        read_raw(path)


def _bad(**change):
    a = make_ann("v_Bad_g01_c01")
    for k, v in change.items():
        if v is KeyError:
            del a[k]
        else:
            a[k] = v
    return a


@pytest.mark.parametrize("ann, message", [
    (_bad(keypoint=KeyError), "missing key.*keypoint"),
    (_bad(keypoint_score=KeyError), "missing key.*keypoint_score"),
    (_bad(label=KeyError), "missing key.*label"),
    (_bad(img_shape=KeyError), "missing key.*img_shape"),
    (_bad(keypoint=np.zeros((10, 17, 2), np.float16)), r"keypoint has shape \(10, 17, 2\)"),
    (_bad(keypoint=np.zeros((1, 10, 17, 4), np.float16)), r"expected \(M, T, V, 2\) or \(M, T, V, 3\)"),
    (_bad(keypoint=np.zeros((1, 10, 18, 2), np.float16)), r"keypoint_score has shape \(1, 10, 17\)"),
    (_bad(keypoint=np.zeros((1, 10, 17, 3), np.float16)), r"17 joints in 3D with scores, but the annotations "
                                                          r"before it are 17 joints in 2D"),
    (_bad(keypoint_score=np.zeros((1, 9, 17), np.float16)), "keypoint_score has shape"),
    (_bad(label=-1), r"label must be in 0..10,000, got -1"),
    (_bad(label=1.5), "label must be an integer"),
    (_bad(label="3"), "label must be an integer"),
    (_bad(img_shape=(0, 340)), "img_shape must be positive"),
    (_bad(img_shape=(256, -1)), "img_shape must be positive"),
    (_bad(img_shape="big"), "img_shape must be"),
])
def test_bad_annotation_names_the_sample(tmp_path, ann, message):
    path = write_pickle(tmp_path / "bad.pkl", [make_ann("v_Ok_g01_c01"), ann])
    with pytest.raises(SkpipeError, match=message) as e:
        read_raw(path)
    assert "annotation 1" in str(e.value)
    if "frame_dir" in ann:
        assert "v_Bad_g01_c01" in str(e.value)


@pytest.mark.parametrize("obj, message", [
    ({"annotations": []}, "no annotations"),
    ([], "no annotations"),
    (42, "expected a dict with 'annotations'"),
    ("text", "expected a dict with 'annotations'"),
    ({"annotations": "nope"}, "'annotations' must be a list"),
    ([make_ann("v_A_g01_c01"), make_ann("v_A_g01_c01")], "annotation 1 .*duplicate frame_dir"),
    ({"split": {"train1": ["v_Ghost_g01_c01"]}, "annotations": [make_ann()]},
     "split 'train1' names frame_dir 'v_Ghost_g01_c01'"),
    ({"split": {"train1": [["v_Foo_g01_c01"]]}, "annotations": [make_ann()]},
     r"split 'train1' holds \['v_Foo_g01_c01'\], not a frame_dir name"),
])
def test_bad_top_level(tmp_path, obj, message):
    with pytest.raises(SkpipeError, match=message):
        read_raw(write_pickle(tmp_path / "x.pkl", obj))


def test_missing_not_a_pickle_truncated(tmp_path):
    with pytest.raises(SkpipeError, match="no such file"):
        read_raw(tmp_path / "nope.pkl")
    (tmp_path / "text.pkl").write_text("frame_dir,label\nfoo,1\n")
    with pytest.raises(SkpipeError, match="not a valid pickle"):
        read_raw(tmp_path / "text.pkl")
    data = pickle.dumps([make_ann()], protocol=4)
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(SkpipeError, match="truncated pickle|not a valid pickle"):
        read_raw(tmp_path / "cut.pkl")
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(SkpipeError, match="empty file"):
        read_raw(tmp_path / "empty.pkl")


def test_parse_frame_dir():
    assert parse_frame_dir("v_ApplyEyeMakeup_g08_c01") == ("ApplyEyeMakeup", 8, 1)
    assert parse_frame_dir("v_Jump_Rope_g25_c07") == ("Jump_Rope", 25, 7)
    assert parse_frame_dir("clip_0001") == (None, -1, -1)


def _laughs(depth=40):
    x: list = ["lol"]
    for _ in range(depth):
        x = [x, x]  # 2^40 leaves when printed, a few hundred bytes when pickled
    return x


@pytest.mark.parametrize("ann, message", [
    (_bad(img_shape=(True, True)), "img_shape must be"),
    (_bad(img_shape=(float("inf"), 340)), "img_shape must be"),
    (_bad(img_shape=(2**40, 340)), "img_shape must be positive"),
    (_bad(label=2**70), "label must be in 0..10,000"),
    (_bad(label=10**6), "label must be in 0..10,000"),
    (_bad(total_frames=-1), "total_frames must be"),
    (_bad(total_frames=2**40), "total_frames must be"),
    (_bad(label=_laughs()), "label must be an integer"),
    (_bad(img_shape=_laughs()), "img_shape must be"),
    (_bad(frame_dir="v_\udc80_g01_c01"), "lone surrogates"),
])
def test_hostile_values_are_refused_in_one_bounded_line(tmp_path, ann, message):
    path = write_pickle(tmp_path / "bad.pkl", [make_ann("v_Ok_g01_c01"), ann])
    with pytest.raises(SkpipeError, match=message) as e:
        read_raw(path)
    assert len(str(e.value)) < 300


def test_object_arrays_and_unknown_codecs_are_refused(tmp_path):
    arr = np.array([1, "a"], dtype=object)
    path = tmp_path / "obj.pkl"
    path.write_bytes(pickle.dumps([{**make_ann(), "keypoint": arr}], protocol=2))
    with pytest.raises(SkpipeError, match="object dtype"):
        read_raw(path)
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x08\x00\x00\x00nocodec!\x86R.")
    with pytest.raises(SkpipeError, match="refused _codecs.encode"):
        read_raw(path)


def test_deep_nesting_is_refused_before_the_unpickler_builds_it(tmp_path):
    """A 10^6-deep tuple used as a dict key crashed the C unpickler (C stack overflow while
    hashing it). The opcode pre-scan refuses it in one line; run in a child, so that a
    regression shows as a failed test rather than a dead test run."""
    import subprocess
    import sys

    path = tmp_path / "deep.pkl"
    n = 10**6  # PROTO 4, EMPTY_DICT, BININT1 0, TUPLE1 x n, BININT1 1, SETITEM, STOP
    path.write_bytes(b"\x80\x04}K\x00" + b"\x85" * n + b"K\x01s.")
    code = ("import sys; from pipeline.source.raw import read_raw\n"
            "try: read_raw(sys.argv[1])\nexcept Exception as e: print(e)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"crashed: {out.returncode} {out.stderr[-500:]}"
    assert "refused containers nested 100+ deep" in out.stdout and len(out.stdout.splitlines()) == 1


def test_bytearrays_and_out_of_band_buffers_are_refused(tmp_path):
    path = write_pickle(tmp_path / "ba.pkl", [make_ann()])
    path.write_bytes(pickle.dumps({"annotations": [make_ann()], "x": bytearray(b"0" * 64)}, protocol=5))
    with pytest.raises(SkpipeError, match=r"refused a bytearray \(BYTEARRAY8\)"):
        read_raw(path)


def test_ordinary_nesting_loads_and_the_hash_covers_the_whole_file(tmp_path):
    from pipeline.source.raw import file_sha256, load_pickle

    nested: list = []
    for _ in range(60):
        nested = [nested, (1, 2)]
    path = tmp_path / "n.pkl"
    path.write_bytes(pickle.dumps(nested, protocol=4) + b"trailing bytes after STOP")
    obj, size, digest = load_pickle(path)
    assert obj == nested and size == path.stat().st_size and digest == file_sha256(path)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("kind", ["list", "tuple", "dict", "set"])
def test_nesting_bound_in_every_protocol(tmp_path, protocol, kind):
    """Below the bound everything loads; above it each container kind is refused, whatever the
    protocol's argument encoding (protocol 0: newline-terminated arguments and memo keys)."""
    from pipeline.source.raw import load_pickle

    def nest(depth):
        obj = 0
        for i in range(depth):
            obj = [obj, "x"] if kind == "list" else {"k": obj} if kind == "dict" else (obj, i)
        return {obj} if kind == "set" else obj  # a deep tuple hashed as a set element

    ok, deep = tmp_path / "ok.pkl", tmp_path / "deep.pkl"
    ok.write_bytes(pickle.dumps(nest(40), protocol=protocol))
    deep.write_bytes(pickle.dumps(nest(150), protocol=protocol))
    assert load_pickle(ok)[0] == nest(40)
    with pytest.raises(SkpipeError, match="nested 100\\+ deep"):
        load_pickle(deep)
    ok.write_bytes(ok.read_bytes()[:-1])  # no STOP: truncated
    with pytest.raises(SkpipeError, match="truncated|not a valid pickle"):
        load_pickle(ok)
