"""Several persons from a real video: BlazePose's detector and landmarks under LiteRT, tracked."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from tests.conftest import SHARED_DATA

VIDEO = SHARED_DATA / "videos" / "demo_skeleton.mp4"
pytest.importorskip("mediapipe", reason="the video extra is not installed")
pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (the video extra) is not installed")
pytestmark = pytest.mark.skipif(not VIDEO.is_file(), reason="../shared/data/videos is absent")


def test_extract_two_persons_of_the_shared_video_and_ingest_them(tmp_path):
    out = tmp_path / "two.pkl"
    r = CliRunner().invoke(main, ["extract", str(VIDEO), "--out", str(out), "--persons", "2"])
    assert r.exit_code == 0, r.output
    ann = pickle.loads(out.read_bytes())["annotations"][0]
    kp, score = ann["keypoint"], ann["keypoint_score"]
    assert kp.shape == (2, 72, 17, 2)
    both = int(((score.mean(-1) > 0).sum(0) == 2).sum())
    assert both >= 0.9 * kp.shape[1]  # measured: 71 of 72 frames
    # persons in PYSKL's order: the highest total score first
    assert score[0].astype(np.float32).sum() >= score[1].astype(np.float32).sum()
    # each slot stays on its side of the frame (the two do not swap)
    hips = kp[:, :, [11, 12], 0].astype(np.float32).mean(-1)  # (2, T) hip x
    seen = (score[:, :, [11, 12]] > 0).all(-1).all(0)
    side = np.sign(hips[0, seen] - hips[1, seen])
    assert abs(side.sum()) == len(side)
    r = CliRunner().invoke(main, ["ingest", str(out), "--cache", str(tmp_path / "c"), "--persons", "2"])
    assert r.exit_code == 0 and "2 persons" in r.output


def test_render_draws_every_tracked_person_of_a_video(tmp_path):
    from PIL import Image

    frames = {}
    for n in (1, 2):
        out = tmp_path / f"p{n}.gif"
        r = CliRunner().invoke(main, ["render", str(VIDEO), "--persons", str(n), "--out", str(out)])
        assert r.exit_code == 0, r.output
        with Image.open(out) as gif:
            frames[n] = np.asarray(gif.convert("RGB"), dtype=np.int16)  # (H, W, 3), the first frame
    drawn = (np.abs(frames[2] - frames[1]).sum(-1) > 60).sum()  # pixels only the second skeleton changed
    assert drawn > 200, drawn


@pytest.mark.parametrize(("args", "says"), [
    (["--persons", "0"], "range"),
    (["--persons", "100"], "range"),
    (["--persons", "2", "--layout", "handmp"], "one hand per clip"),
])
def test_bad_persons_are_one_line(tmp_path, args, says):
    r = CliRunner().invoke(main, ["extract", str(VIDEO), "--out", str(tmp_path / "x.pkl"), *args])
    assert r.exit_code != 0 and says in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.pkl").exists()
