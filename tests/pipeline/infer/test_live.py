"""`skpipe live` without a camera: files, a local stalled server, a real SIGINT."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from pipeline.run.options import TrainConfig
from pipeline.train.fit import fit
from tests.conftest import SHARED_DATA, ctrl_c_reaches_child

cv2 = pytest.importorskip("cv2", reason="the video extra (OpenCV) is not installed")
SHARED = SHARED_DATA


def write_video(path: Path, frames: int, fps: float = 30.0, size: tuple[int, int] = (96, 72)) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        w.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    w.release()
    return path


class FixedPose:
    """A backend that finds the same body in every frame, instantly (COCO-17 via MediaPipe's 33)."""

    layout = "mediapipe33"
    max_persons = 1

    def __call__(self, rgb):  # noqa: ANN001, ANN204
        xy = np.linspace(10, 60, 66, dtype=np.float32).reshape(1, 33, 2)
        return xy, np.full((1, 33), 0.9, np.float32)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def body_run(synth_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("liveruns")
    return fit(TrainConfig(model="stgcn", cache=str(synth_cache), out=str(out), epochs=1, frames=16,
                           threads=1, precision="fp32")).run_dir


def test_realtime_drops_frames_behind_a_slow_model_and_memory_stays_flat(body_run, tmp_path):
    import skpipe
    from pipeline.infer.live import LiveConfig, run_live

    model = skpipe.load(body_run)
    real = model.windows

    def slow(*a, **k):  # noqa: ANN002, ANN003, ANN202
        time.sleep(0.15)
        return real(*a, **k)

    model.windows = slow  # type: ignore[method-assign]
    video = write_video(tmp_path / "v.avi", 120)  # 4 s at 30 fps
    labels = []
    tracemalloc.start()
    summary = run_live(model, LiveConfig(str(video), window=16, stride=2, realtime=True), labels.append,
                       backend_factory=FixedPose)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert summary["frames"] == 120 and summary["dropped"] > 20
    assert summary["processed"] + summary["dropped"] == 120
    assert peak < 64 << 20  # frames never queue: at most one waits
    assert labels and all(set(lab) == {"frame", "time", "top", "latency_ms"} for lab in labels)
    fast = run_live(skpipe.load(body_run), LiveConfig(str(video), window=16, stride=4), lambda _: None,
                    backend_factory=FixedPose)  # a file, not real time: nothing dropped
    assert fast["dropped"] == 0 and fast["processed"] == 120


def test_live_equals_predict_on_the_same_windows(hagrid_run):
    run, _ = hagrid_run
    video = str(SHARED / "videos" / "hand.mp4")
    r = CliRunner().invoke(main, ["live", str(run), "--source", video, "--window", "10", "--stride", "5",
                                  "--json"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in r.output.splitlines()]
    labels, summary = lines[:-1], lines[-1]["summary"]
    assert summary["frames"] == summary["processed"] == 180 and summary["dropped"] == 0
    assert summary["found"] == 1.0
    r = CliRunner().invoke(main, ["predict", str(run), video, "--window", "10", "--stride", "5", "--json"])
    windows = {w["end"]: w for w in json.loads(r.output)["windows"]}
    assert len(labels) == len(windows) == 35
    for lab in labels:
        w = windows[lab["frame"]]
        assert lab["top"][0]["class"] == w["top"][0]["class"]
        assert lab["top"][0]["probability"] == pytest.approx(w["top"][0]["probability"], abs=1e-5)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_leaves_a_playable_video_in_the_source_time(body_run, tmp_path, sig):
    """A service manager stops with SIGTERM: it ends the run as Ctrl-C does. The recording plays
    at the source's 30 fps, frames dropped in real time held, so it lasts as long as was read."""
    pytest.importorskip("mediapipe", reason="the video extra (MediaPipe) is not installed")
    video = write_video(tmp_path / "long.avi", 600)  # 20 s at 30 fps, played in real time
    out = tmp_path / "labelled.avi"
    child = subprocess.Popen([sys.executable, "-m", "cli.main", "live", str(body_run), "--source", str(video),
                              "--realtime", "--window", "16", "--stride", "4", "--out", str(out), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[3], preexec_fn=ctrl_c_reaches_child)
    assert child.stdout is not None
    first = child.stdout.readline()  # the first label: the loop is running
    assert json.loads(first)["frame"] >= 15
    time.sleep(1.0)
    child.send_signal(sig)
    rest, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    summary = json.loads(rest.strip().splitlines()[-1])["summary"]
    assert 0 < summary["frames"] < 600
    cap = cv2.VideoCapture(str(out))
    n, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (72, 96, 3) and fps == pytest.approx(30.0)
    assert summary["frames"] - 10 <= n <= summary["frames"], (n, summary)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_a_stalled_server_times_out_in_one_line(body_run):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # accepts, then sends nothing
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    port = server.getsockname()[1]
    start = time.monotonic()
    try:
        r = CliRunner().invoke(main, ["live", str(body_run), "--source", f"http://127.0.0.1:{port}/cam.mjpg",
                                      "--timeout", "2", "--json"])
    finally:
        stop.set()
        for c in held:
            c.close()
        server.close()
    assert time.monotonic() - start < 30
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(lines) == 1, r.output
    assert any(s in lines[0] for s in ("nothing answered in 2 s", "no frame for 2 s", "cannot be opened"))


def test_bad_live_inputs_are_one_line(body_run, tmp_path):
    def err(*args: str) -> str:
        r = CliRunner().invoke(main, ["live", str(body_run), *args], env={"DISPLAY": ""})
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert r.exit_code in (1, 2) and len(lines) == 1 and lines[0].startswith("Error: "), r.output
        return lines[0]

    assert "no camera there" in err("--source", "9", "--json", "--timeout", "3")
    assert "--window must be in 1..16" in err("--source", "9", "--window", "17", "--json")
    line = err("--source", "9", "--out", "/proc/nowhere/x.mp4")  # checked before the camera
    assert "/proc/nowhere" in line and "camera" not in line
    assert "no display" in err("--source", "9")
    assert "no such file" in err("--source", str(tmp_path / "none.mp4"), "--json")
    junk = tmp_path / "notavideo.mp4"
    junk.write_text("not a video at all, just text\n")
    assert "not a video container" in err("--source", str(junk), "--json")  # predict's words
    assert "not a finite number" in err("--source", "9", "--json", "--timeout", "nan")
    assert "0.1<=x<=3600" in err("--source", "9", "--json", "--timeout", "inf")


def _serve_files(folder: Path) -> tuple[Any, str]:
    """A loopback HTTP server of `folder`'s files (ffmpeg reads a video over HTTP as a stream)."""
    import functools
    import http.server

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def test_a_stream_is_decoded_in_a_child_whose_crash_is_one_line(body_run, tmp_path):
    """A URL's decoder (FFmpeg, which can abort the process on a hostile server's answer) runs in a
    child: live labels through it, and its death by SIGABRT ends the source in one line."""
    from pipeline import SkpipeError
    from pipeline.infer.live import FrameReader

    write_video(tmp_path / "v.avi", 60)
    server, url = _serve_files(tmp_path)
    try:
        r = CliRunner().invoke(main, ["live", str(body_run), "--source", f"{url}/v.avi", "--window", "16",
                                      "--json", "--persons", "1"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output.splitlines()[-1])["summary"]["frames"] == 60
        reader = FrameReader(f"{url}/v.avi", realtime=False, timeout=10)
        reader.open()
        assert reader._cap._proc.pid != os.getpid()
        frames = reader.frames()
        next(frames)
        os.kill(reader._cap._proc.pid, signal.SIGABRT)  # what a hostile server made FFmpeg do
        with pytest.raises(SkpipeError, match=r"decoder crashed \(SIGABRT\)"):
            list(frames)
        reader.close()
    finally:
        server.shutdown()


def test_two_pose_workers_keep_the_frames_in_order(body_run, tmp_path, monkeypatch):
    """In real time, pose backends run side by side on alternate frames; the ring still receives
    the frames in their order, and a file read as fast as possible keeps one backend."""
    import skpipe
    from pipeline.infer import live

    assert live.pose_workers("clip.mp4", realtime=False) == 1
    monkeypatch.setattr(live.os, "sched_getaffinity", lambda _: {0, 1, 2, 3})
    assert live.pose_workers("clip.mp4", realtime=True) == 2 and live.pose_workers("0", False) == 2
    made: list[object] = []

    class Uneven(FixedPose):
        def __init__(self):  # noqa: ANN204
            self.calls = len(made)
            made.append(self)

        def __call__(self, rgb):  # noqa: ANN001, ANN204
            self.calls += 1
            time.sleep(0.002 * (self.calls % 3))  # uneven: a later frame may finish first
            return super().__call__(rgb)

    video = write_video(tmp_path / "v.avi", 60)
    labels: list[dict] = []
    live.run_live(skpipe.load(body_run), live.LiveConfig(str(video), window=8, stride=4, realtime=True),
                  labels.append, backend_factory=Uneven)
    assert len(made) == 2  # one backend per worker
    marks = [lab["frame"] for lab in labels]
    assert marks == sorted(marks) and len(set(marks)) == len(marks)  # labelled in frame order


def test_slots_keep_each_tracked_id_in_its_slot():
    from pipeline.infer.live import Slots

    s = Slots(2)
    assert s.place(np.array([4, 7])) == [(0, 0), (1, 1)]
    assert s.place(np.array([7])) == [(0, 1)]  # id 7 stays in slot 1 while id 4 is away
    assert s.place(np.array([9, 7])) == [(0, 0), (1, 1)]  # a new id takes the free slot
    assert s.place(np.array([7, 9, 11])) == [(0, 1), (1, 0)]  # a third person: no slot left


def test_live_tracks_two_persons_and_draws_both(body_run, tmp_path):
    pytest.importorskip("mediapipe", reason="the video extra (MediaPipe) is not installed")
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (the video extra) is not installed")
    video = SHARED / "videos" / "demo_skeleton.mp4"
    if not video.is_file():
        pytest.skip("../shared/data/videos is absent")
    import skpipe
    from pipeline.infer.live import LiveConfig, run_live

    poses: list = []
    labels: list = []
    summary = run_live(skpipe.load(body_run), LiveConfig(str(video), 16, 8, persons=2, max_frames=40),
                       labels.append, lambda frame: poses.append(frame.pose) or True)
    assert summary["processed"] == 40 and labels
    both = [p for p in poses if p is not None and (np.abs(p).sum(axis=(1, 2)) > 0).all()]
    assert all(p.shape == (2, 17, 2) for p in poses if p is not None) and len(both) >= 36
    r = CliRunner().invoke(main, ["live", str(body_run), "--source", str(video), "--persons", "2",
                                  "--max-frames", "24", "--window", "16", "--out", str(tmp_path / "two.avi")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "two.avi").is_file()
