"""Videos -> PYSKL pickles: labels, the 33 -> 17 mapping, extraction of the development video,
resume, bad videos, rendering, and predict on a video against predict on its pickle."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from models.layouts import COCO17, MEDIAPIPE33, MEDIAPIPE33_TO_COCO17
from pipeline import SkpipeError
from pipeline.source.extract import list_videos, parts_dir
from pipeline.source.raw import read_raw
from pipeline.source.render import draw_frame
from pipeline.source.video import to_layout
from tests.conftest import SHARED_DATA, ctrl_c_reaches_child

DEV_VIDEO = SHARED_DATA / "videos" / "demo_skeleton.mp4"
HAS_VIDEO = all(importlib.util.find_spec(m) is not None for m in ("mediapipe", "cv2"))
needs_video = pytest.mark.skipif(not HAS_VIDEO, reason="needs the video extra: pip install 'skpipe[video]'")
needs_dev_video = pytest.mark.skipif(not DEV_VIDEO.exists(),
                                     reason=f"the development video {DEV_VIDEO} is absent (../shared)")


def _touch(root: Path, *names: str) -> None:
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_bytes(b"")


def _black_video(path: Path, frames: int = 8, size: tuple[int, int] = (64, 48)) -> Path:
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, size)
    for _ in range(frames):
        w.write(np.zeros((size[1], size[0], 3), np.uint8))
    w.release()
    return path


# --- labels -------------------------------------------------------------------------------

def test_class_per_folder_labels_and_unlabelled_folders(tmp_path):
    _touch(tmp_path / "v", "walk/a.mp4", "jump/b.avi", "jump/c.MOV", "jump/notes.txt")
    listing = list_videos(tmp_path / "v")
    assert listing.classes == ["jump", "walk"]
    assert {(i.frame_dir, i.label) for i in listing.items} == {("a", 1), ("b", 0), ("c", 0)}
    _touch(tmp_path / "flat", "x.mp4", "y.mp4")
    flat = list_videos(tmp_path / "flat")
    assert flat.classes is None and [i.label for i in flat.items] == [0, 0]
    _touch(tmp_path / "mixed", "x.mp4", "c/y.mp4")
    with pytest.raises(SkpipeError, match="several depths"):
        list_videos(tmp_path / "mixed")
    _touch(tmp_path / "dup", "a/x.mp4", "b/x.mp4")
    with pytest.raises(SkpipeError, match="two videos are named 'x'"):
        list_videos(tmp_path / "dup")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SkpipeError, match="no videos"):
        list_videos(tmp_path / "empty")
    (tmp_path / "special").mkdir()
    (tmp_path / "special" / "zero.mp4").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "special" / "fifo.mp4")
    with pytest.raises(SkpipeError, match="no videos"):  # neither is read
        list_videos(tmp_path / "special")
    with pytest.raises(SkpipeError, match="not a regular file"):
        list_videos(tmp_path / "special" / "fifo.mp4")


def test_labels_csv_rules(tmp_path):
    _touch(tmp_path, "v/one.mp4", "v/sub/two.mp4")
    csv = tmp_path / "labels.csv"
    csv.write_text("video,label,split\none.mp4,walk,train\nsub/two.mp4,run,test\n")
    listing = list_videos(tmp_path / "v", csv)
    assert listing.classes == ["run", "walk"]
    got = [(i.frame_dir, i.label, i.split) for i in listing.items]
    assert got == [("one", 1, "train"), ("two", 0, "test")]
    for text, msg in [("video,split\none.mp4,train\n", "no 'label' column"),
                      ("video,label\nmissing.mp4,walk\n", "not found under"),
                      ("video,label,split\none.mp4,walk,holdout\n", "expected train or test"),
                      ("video,label\none.mp4,\n", "empty label"),
                      ("video,label\n", "no rows")]:
        csv.write_text(text)
        with pytest.raises(SkpipeError, match=msg):
            list_videos(tmp_path / "v", csv)


def test_labels_csv_rows_stay_inside_the_folder_and_refuse_fast(tmp_path):
    _touch(tmp_path, "v/one.mp4", "outside.mp4")
    csv = tmp_path / "labels.csv"
    for row, msg in [("../outside.mp4", "is outside"), ("/etc/passwd", "is outside"),
                     (str(tmp_path / "outside.mp4"), "is outside"), ("one.txt", "not a video file")]:
        csv.write_text(f"video,label\n{row},walk\n")
        with pytest.raises(SkpipeError, match=msg):
            list_videos(tmp_path / "v", csv)
    csv.write_text("video,label\n" + "".join(f"x{i}.mp4,walk\n" for i in range(200_000)))
    with pytest.raises(SkpipeError, match="200,001 lines, but .* holds 1 video"):  # before parsing
        list_videos(tmp_path / "v", csv)


def test_a_file_name_that_is_not_utf8_is_listed_escaped(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "ok.mp4").write_bytes(b"")
    bad = os.fsdecode(b"bad\xff")
    (tmp_path / "v" / f"{bad}.mp4").write_bytes(b"")
    names = sorted(i.frame_dir for i in list_videos(tmp_path / "v").items)
    assert names == ["bad\\xff", "ok"]
    names[0].encode("utf-8")  # printable and writable


@needs_video
@pytest.mark.skipif(not DEV_VIDEO.exists(), reason="../shared/data/videos is absent")
def test_a_video_whose_name_is_not_utf8_is_decoded(tmp_path):
    """OpenCV ends the process on such a name; it is opened through a plain-named link."""
    from pipeline.source.video import read_frames

    bad = tmp_path / os.fsdecode(b"clip\xff.mp4")
    shutil.copy(DEV_VIDEO, bad)
    assert sum(1 for _ in read_frames(bad, max_frames=5)) == 5


def test_extract_to_an_unwritable_place_is_one_line(tmp_path):
    _touch(tmp_path, "v/one.mp4")
    r = CliRunner().invoke(main, ["extract", str(tmp_path / "v"), "--out", "/proc/x.pkl"])
    assert r.exit_code == 1 and "cannot write /proc/x.pkl" in r.output and "Traceback" not in r.output


# --- the 33 -> 17 mapping --------------------------------------------------------------------

def test_mediapipe_to_coco17_maps_each_joint_to_the_landmark_of_its_name():
    names = MEDIAPIPE33["joints"]
    assert [names[i] for i in MEDIAPIPE33_TO_COCO17] == COCO17["joints"]
    # hand-picked: COCO's left wrist is landmark 15, right ankle 28, nose 0, right ear 8
    kp = np.arange(33 * 2, dtype=np.float32).reshape(1, 33, 2)  # landmark i holds (2i, 2i + 1)
    sc = np.arange(33, dtype=np.float32)[None] / 100
    k17, s17 = to_layout(kp, sc, "mediapipe33", "coco17")
    assert k17.shape == (1, 17, 2) and s17.shape == (1, 17)
    for coco, mp in ((9, 15), (16, 28), (0, 0), (4, 8)):
        assert k17[0, coco].tolist() == [2 * mp, 2 * mp + 1] and s17[0, coco] == pytest.approx(mp / 100)
    same, _ = to_layout(kp, sc, "mediapipe33", "mediapipe33")
    assert same is kp
    with pytest.raises(SkpipeError, match="no mapping"):
        to_layout(kp, sc, "mediapipe33", "ntu25")


def test_draw_frame_draws_bones_and_caption():
    canvas = np.zeros((60, 80, 3), np.uint8)
    people = np.array([[[10, 10], [70, 50]]], np.float32)  # (M=1, V=2, 2)
    out = draw_frame(canvas, people, np.ones((1, 2), np.float32), [[0, 1]])
    assert out[30, 40].any()  # the bone's middle is drawn
    low = draw_frame(canvas, people, np.zeros((1, 2), np.float32), [[0, 1]])
    assert not low.any()  # unscored joints are not drawn
    assert draw_frame(canvas, people[:, :0], np.zeros((1, 0)), [], "walk 90%")[:20, :40].any()


# --- extraction (the video extra) -----------------------------------------------------------

def test_extract_without_the_extra_names_it(monkeypatch, tmp_path):
    import pipeline.source.pose as pose

    monkeypatch.setitem(__import__("sys").modules, "mediapipe", None)  # import fails
    with pytest.raises(SkpipeError, match=r"skpipe\[onnx,video\]"):
        pose.import_mediapipe()


@needs_video
@needs_dev_video
def test_dev_video_gives_a_person_in_most_frames_deterministically(tmp_path):
    r = CliRunner().invoke(main, ["extract", str(DEV_VIDEO), "--out", str(tmp_path / "a.pkl")])
    assert r.exit_code == 0, r.output
    assert "without a person" in r.output and "Traceback" not in r.output
    raw = read_raw(tmp_path / "a.pkl")
    (ann,) = raw.annotations
    kp, sc = ann["keypoint"], ann["keypoint_score"]  # (1, T, 17, 2), (1, T, 17)
    assert kp.dtype == np.float16 and sc.dtype == np.float16 and kp.shape[2:] == (17, 2)
    assert ann["img_shape"] == (1080, 1920) and ann["total_frames"] == kp.shape[1] > 50
    found = (sc[0] > 0).any(axis=1)
    assert found.mean() > 0.9
    seen = sc[0] > 0.5
    x, y = kp[0, ..., 0][seen], kp[0, ..., 1][seen]
    assert ((x >= 0) & (x < 1920) & (y >= 0) & (y < 1080)).mean() > 0.95
    assert not parts_dir(tmp_path / "a.pkl").exists()  # removed once the pickle is written
    r = CliRunner().invoke(main, ["extract", str(DEV_VIDEO), "--out", str(tmp_path / "b.pkl"),
                                  "--layout", "mediapipe33"])
    assert r.exit_code == 0, r.output
    b = read_raw(tmp_path / "b.pkl").annotations[0]
    assert b["keypoint"].shape[2] == 33
    assert np.array_equal(b["keypoint"][..., MEDIAPIPE33_TO_COCO17, :], kp)  # same pass, mapped


@needs_video
@needs_dev_video
def test_bad_videos_are_left_out_in_one_line_and_a_rerun_redoes_only_them(tmp_path):
    v = tmp_path / "v"
    (v / "walk").mkdir(parents=True)
    (v / "wave").mkdir()
    shutil.copy(DEV_VIDEO, v / "walk" / "good.mp4")
    (v / "walk" / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    (v / "wave" / "empty.mp4").write_bytes(b"")
    _black_video(v / "wave" / "nobody.mp4")
    out = tmp_path / "raw.pkl"
    r = CliRunner().invoke(main, ["extract", str(v), "--out", str(out), "--jobs", "2"])
    assert r.exit_code != 0 and "Traceback" not in r.output, r.output
    assert "3 video(s) failed" in r.output and "nobody was found" in r.output
    assert len([ln for ln in r.output.splitlines() if ln.startswith("skipped ")]) == 3
    raw = read_raw(out)
    assert [a["frame_dir"] for a in raw.annotations] == ["good"] and raw.classes == ["walk", "wave"]
    assert parts_dir(out).exists()  # kept for the retry
    for bad in ("corrupt", "empty", "nobody"):
        p = next(v.rglob(f"{bad}.mp4"))
        p.unlink()
        if bad == "nobody":
            shutil.copy(DEV_VIDEO, p)
    r = CliRunner().invoke(main, ["extract", str(v), "--out", str(out), "--force"])
    assert r.exit_code == 0, r.output
    assert "1 from an earlier run" in r.output  # good.mp4 was not redone
    assert sorted(a["frame_dir"] for a in read_raw(out).annotations) == ["good", "nobody"]
    assert not parts_dir(out).exists()


@needs_video
def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.txt").write_text("hi")
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    for args in (["extract", str(tmp_path / "empty"), "--out", str(tmp_path / "o.pkl")],
                 ["extract", str(tmp_path / "x.txt"), "--out", str(tmp_path / "o.pkl")],
                 ["extract", str(zero), "--out", str(tmp_path / "o.pkl")],
                 ["extract", str(tmp_path / "nope"), "--out", str(tmp_path / "o.pkl")]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code != 0 and "Traceback" not in r.output, r.output
        assert len([ln for ln in r.output.splitlines() if ln.startswith("Error")]) == 1
        assert not (tmp_path / "o.pkl").exists() and not parts_dir(tmp_path / "o.pkl").exists()
    existing = tmp_path / "have.pkl"
    existing.write_bytes(b"keep")
    r = CliRunner().invoke(main, ["extract", str(zero), "--out", str(existing)])
    assert r.exit_code != 0 and "already exists" in r.output and existing.read_bytes() == b"keep"


@needs_video
@needs_dev_video
def test_predict_on_a_video_equals_predict_on_its_pickle_and_renders(tmp_path, synth_cache):
    import json

    from pipeline.run.options import TrainConfig
    from pipeline.train.fit import fit

    run = fit(TrainConfig(model="stgcn", cache=str(synth_cache), out=str(tmp_path / "runs"), epochs=1,
                          frames=16, threads=1)).run_dir
    clip = tmp_path / "clip.mp4"
    shutil.copy(DEV_VIDEO, clip)
    assert CliRunner().invoke(main, ["extract", str(clip), "--out", str(tmp_path / "c.pkl")]).exit_code == 0
    args = ["--json", "--window", "16", "--stride", "8", "--top", "3"]
    on_pickle = CliRunner().invoke(main, ["predict", str(run), str(tmp_path / "c.pkl"), *args])
    gif = tmp_path / "out" / "labelled.gif"
    on_video = CliRunner().invoke(main, ["predict", str(run), str(clip), *args, "--render", str(gif)])
    assert on_pickle.exit_code == 0 and on_video.exit_code == 0, on_video.output
    a, b = json.loads(on_pickle.output), json.loads(on_video.output)
    assert b.pop("render") == str(gif)
    assert a.pop("label") == 0 and b.pop("label") is None  # a video has no label; its pickle says 0
    assert a == b and len(a["windows"]) > 3
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == a["windows"][-1]["end"] + 1 and im.size == (480, 270)
    r = CliRunner().invoke(main, ["predict", str(run), str(clip), "--render", str(gif)])
    assert r.exit_code != 0 and "already exists" in r.output
    r = CliRunner().invoke(main, ["predict", str(run), str(clip), "--render", "/proc/nope/x.gif"])
    assert r.exit_code != 0 and "Traceback" not in r.output and len(r.output.splitlines()) == 1
    r = CliRunner().invoke(main, ["render", str(tmp_path / "c.pkl"), "--out", str(tmp_path / "s.mp4"),
                                  "--video", str(clip)])
    assert r.exit_code == 0 and (tmp_path / "s.mp4").stat().st_size > 1000, r.output
    folder = tmp_path / "new_videos"
    folder.mkdir()
    for name in ("one.mp4", "two.mp4"):
        shutil.copy(DEV_VIDEO, folder / name)
    r = CliRunner().invoke(main, ["predict", str(run), str(folder), "--json", "--top", "3"])
    assert r.exit_code == 0, r.output
    one, two = map(json.loads, r.output.splitlines())
    assert (one["frame_dir"], two["frame_dir"]) == ("one", "two")
    for got in (one, two):  # the same video twice: the same answer (a batch of 2 rounds differently)
        assert [t["class"] for t in got["top"]] == [t["class"] for t in a["top"]]
        assert [t["probability"] for t in got["top"]] == pytest.approx([t["probability"] for t in a["top"]],
                                                                       abs=1e-6)


def test_render_of_a_crowd_draws_the_best_scored_persons_only(tmp_path):
    from pipeline.source.render import MAX_PERSONS_DRAWN, render_annotation
    from tests.conftest import make_ann

    ann = make_ann(m=200, t=6)  # a crowd of 200 slots: drawing each would take minutes
    ann["keypoint_score"][3] = 1.0  # the best-scored slot
    r = render_annotation(ann, COCO17, tmp_path / "crowd.gif")
    assert r.frames == 6 and (tmp_path / "crowd.gif").stat().st_size > 0 and MAX_PERSONS_DRAWN == 4
    with pytest.raises(SkpipeError, match="must end in"):
        render_annotation(ann, COCO17, tmp_path / "crowd.png")


@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="needs OpenCV (the video extra)")
def test_render_outputs_that_cannot_be_written_or_read_are_one_line(tmp_path, monkeypatch):
    from pipeline.source import render
    from tests.conftest import make_ann

    ann = make_ann(t=30)
    for out in ("/proc/x.gif", "/sys/x.mp4"):  # mkstemp itself fails there
        with pytest.raises(SkpipeError, match=f"cannot write {out}"):
            render.render_annotation(ann, COCO17, Path(out))
    os.mkfifo(tmp_path / "fifo.mp4")
    with pytest.raises(SkpipeError, match="not a regular file"):  # OpenCV would block on it
        render.render_annotation(ann, COCO17, tmp_path / "a.gif", video=tmp_path / "fifo.mp4")
    r = render.render_annotation(ann, COCO17, tmp_path / "a.mp4")
    assert r.frames == 30
    real = render._write_video

    def short(path, frames, size, fps, codec):  # a full disk: the writer silently stops
        real(path, (f for i, f in enumerate(frames) if i < 2), size, fps, codec)
        render._check_written(path, 30)

    monkeypatch.setattr(render, "_write_video", short)
    with pytest.raises(SkpipeError, match="cannot write .*b.avi: 2 of 30 frames written"):
        render.render_annotation(ann, COCO17, tmp_path / "b.avi")
    assert not (tmp_path / "b.avi").exists() and not list(tmp_path.glob(".b.avi*"))
    monkeypatch.setattr(render, "MAX_VIDEO_RENDER_FRAMES", 12)
    monkeypatch.setattr(render, "_write_video", real)
    assert render.render_annotation(ann, COCO17, tmp_path / "c.mp4").frames == 12  # capped


@needs_video
@needs_dev_video
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_extraction_continues_where_it_stopped(tmp_path, sig):
    """Ctrl-C, or SIGTERM (a service manager's stop): the same clean end."""
    import signal
    import subprocess
    import sys
    import time

    v = tmp_path / "v" / "act"
    v.mkdir(parents=True)
    for i in range(4):
        shutil.copy(DEV_VIDEO, v / f"clip{i}.mp4")
    out = tmp_path / "raw.pkl"
    cmd = [sys.executable, "-m", "cli.main", "extract", str(v.parent), "--out", str(out)]
    p = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[3], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, preexec_fn=ctrl_c_reaches_child)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(parts_dir(out).glob("*.npz")):
        time.sleep(0.1)
    p.send_signal(getattr(signal, sig))  # after the first video is finished
    text = p.communicate(timeout=60)[0]
    assert p.returncode != 0 and "Traceback" not in text, text
    assert not out.exists() and (done := len(list(parts_dir(out).glob("*.npz")))) >= 1
    r = CliRunner().invoke(main, ["extract", str(v.parent), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"({done} from an earlier run)" in r.output
    assert len(read_raw(out).annotations) == 4 and not parts_dir(out).exists()


@needs_video
@needs_dev_video
def test_predict_on_a_folder_goes_on_past_a_bad_video_then_exits_1(tmp_path, synth_cache):
    from pipeline.run.options import TrainConfig
    from pipeline.train.fit import fit

    run = fit(TrainConfig(model="stgcn", cache=str(synth_cache), out=str(tmp_path / "runs"), epochs=1,
                          frames=16, threads=1, precision="fp32")).run_dir
    folder = tmp_path / "videos"
    folder.mkdir()
    _black_video(folder / "a_nobody.mp4")  # nobody in it: left out
    shutil.copy(DEV_VIDEO, folder / "b_person.mp4")
    r = CliRunner().invoke(main, ["predict", str(run), str(folder), "--json"])
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and json_frame_dirs(lines[:-1]) == ["b_person"], r.output
    assert lines[-1].startswith("Error: 1 video left out") and "nobody" in lines[-1]
    table = CliRunner().invoke(main, ["predict", str(run), str(folder)])
    assert table.exit_code == 1 and "b_person" in table.output and "1 video left out" in table.output


def json_frame_dirs(lines: list[str]) -> list[str]:
    import json

    return [json.loads(line)["frame_dir"] for line in lines]


def test_a_protobuf_that_breaks_mediapipe_is_named_before_any_video(tmp_path, monkeypatch):
    """Another install upgraded protobuf: one line naming it, not every video 'skipped'."""
    import importlib.metadata

    from pipeline.source import pose

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "7.36.0" if name == "protobuf" else real(name))
    monkeypatch.setattr(importlib.metadata, "requires",
                        lambda name: ["protobuf<5,>=4.25.3"] if name == "mediapipe" else [])
    assert "needs protobuf <5,>=4.25.3, found 7.36.0" in pose.protobuf_problem()
    _touch(tmp_path, "v/one.mp4")
    r = CliRunner().invoke(main, ["extract", str(tmp_path / "v"), "--out", str(tmp_path / "o.pkl")])
    assert r.exit_code == 1 and "found 7.36.0" in r.output and "pip install 'protobuf<5'" in r.output
    assert not (tmp_path / "o.pkl.parts").exists()


def test_3d_clips_are_drawn_from_a_chosen_view(tmp_path):
    from pipeline.source.render import parse_view, project_3d, render_annotation
    from tests.pipeline.data.test_skeletons import ann3d

    kp = np.zeros((1, 1, 3, 3), np.float32)  # three joints: at the origin side, right and up
    kp[0, 0] = [[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    front, sc = project_3d(kp, *parse_view("front"), 100)
    assert sc.tolist() == [[[1.0, 1.0, 1.0]]]
    assert front[0, 0, 1, 0] > front[0, 0, 0, 0] and front[0, 0, 2, 1] < front[0, 0, 0, 1]  # right; up
    side, _ = project_3d(kp, *parse_view("side"), 100)
    assert side[0, 0, 1, 0] == pytest.approx(side[0, 0, 0, 0], abs=1e-3)  # x runs along the line of sight
    assert parse_view("30,-15") == (30.0, -15.0)
    for bad in ("up", "1,2,3", "0,91", "nan,0"):
        with pytest.raises(SkpipeError, match="--view must be"):
            parse_view(bad)
    from models.layouts import LAYOUTS, check_layout

    kinect = check_layout(LAYOUTS["kinect20"])
    ann = ann3d("S001C001P001R001A001", 0)
    r = render_annotation(ann, kinect, tmp_path / "a.gif", view=parse_view("side"))
    assert r.size == (480, 480) and (tmp_path / "a.gif").stat().st_size > 0
    from tests.conftest import make_ann

    with pytest.raises(SkpipeError, match="--view turns 3D clips"):
        render_annotation(make_ann(), COCO17, tmp_path / "b.gif", view=(0.0, 0.0))


def test_pose_confidences_are_options_checked_once(tmp_path):
    from pipeline.source.extract import Settings, VideoItem, _fingerprint
    from pipeline.source.pose import CONFIDENCE, check_confidence

    assert CONFIDENCE == (0.3, 0.3) and check_confidence(0.2, 0.9) == (0.2, 0.9)
    with pytest.raises(SkpipeError, match="--min-tracking must be in"):
        check_confidence(0.5, 1.5)
    _touch(tmp_path, "v/one.mp4")
    r = CliRunner().invoke(main, ["extract", str(tmp_path / "v"), "--out", str(tmp_path / "o.pkl"),
                                  "--min-detection", "2"])
    assert r.exit_code == 2 and "--min-detection" in r.output and "Traceback" not in r.output
    item = VideoItem(tmp_path / "v" / "one.mp4", "one", 0)
    prints = {_fingerprint(item, Settings("coco17", "mediapipe", 10, d, d)) for d in (0.3, 0.5, 0.7)}
    assert len(prints) == 3  # a part made at other confidences is redone, not reused


def test_junk_is_refused_from_its_first_bytes_before_any_decoder(tmp_path):
    from pipeline.source.video import video_problem

    (tmp_path / "short.mp4").write_bytes(b"hello")
    (tmp_path / "text.mp4").write_bytes(b"not a video, only some text" * 4)
    assert "too short" in video_problem(tmp_path / "short.mp4")
    assert "not a video container" in video_problem(tmp_path / "text.mp4")
    mp4 = b"\x00\x00\x00\x18ftypmp42" + bytes(16)
    (tmp_path / "head.mp4").write_bytes(mp4)
    assert video_problem(tmp_path / "head.mp4") is None  # an MP4 header: left to the decoder
    for i in range(50):
        (tmp_path / "junk" / f"{i}.mp4").parent.mkdir(exist_ok=True)
        (tmp_path / "junk" / f"{i}.mp4").write_bytes(b"x" * 11)
    from pipeline.source.extract import extract

    r = extract(tmp_path / "junk", tmp_path / "out.pkl")
    assert r.out is None and len(r.failed) == 50 and all("too short" in why for _, why in r.failed)
    assert not (tmp_path / "out.pkl").exists()
