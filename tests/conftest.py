"""Shared fixtures: tiny pickles in the real format, built in tmp_path."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Small real UCF101 files live with the tests (a bare clone runs the suite); the larger labelled
# sets stay in ../shared/data, and the tests that read them skip where it is absent.
TEST_DATA = Path(__file__).resolve().parent / "data"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_ann(frame_dir: str = "v_Foo_g01_c01", label: int = 0, m: int = 1, t: int = 10,
             seed: int = 0, img_shape: tuple[int, int] = (256, 340)) -> dict[str, Any]:
    """One annotation with random pixel keypoints (float16, like the real release)."""
    rng = np.random.default_rng(seed)
    h, w = img_shape
    kp = (rng.random((m, t, 17, 2)) * [w, h]).astype(np.float16)
    sc = rng.random((m, t, 17)).astype(np.float16)
    return {"frame_dir": frame_dir, "label": label, "keypoint": kp, "keypoint_score": sc,
            "img_shape": img_shape, "original_shape": img_shape, "total_frames": t}


def ctrl_c_reaches_child() -> None:
    """Popen's preexec_fn for a child the test stops with SIGINT: a shell's background job (a
    suite started with `&`) ignores SIGINT, and the child would inherit that and run on."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_pickle(path: Path, obj: Any) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def tiny_dataset(classes: int = 3, groups: int = 4, clips: int = 2, t: int = 40) -> dict[str, Any]:
    """A small dict-form pickle with UCF101-style names and official-style split 1."""
    anns, k = [], 0
    for c in range(classes):
        for g in range(1, groups + 1):
            for i in range(1, clips + 1):
                anns.append(make_ann(f"v_Class{c}_g{g:02d}_c{i:02d}", c, m=1 + k % 3, t=t + 37 * k % 400,
                                     seed=k))
                k += 1
    test = [a["frame_dir"] for a in anns if a["frame_dir"].endswith(("g01_c01", "g01_c02"))]
    train = [a["frame_dir"] for a in anns if a["frame_dir"] not in test]
    return {"split": {"train1": train, "test1": test}, "annotations": anns}


@pytest.fixture(params=["this-cpu", "native-bf16"])
def any_cpu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test as this CPU is and again on a CPU that looks native-bf16 (the flags
    `pipeline.run.runtime` reads), so that a machine without bf16 catches what one with it would."""
    if request.param == "native-bf16":
        from pipeline.run import runtime

        flags = runtime.cpu_flags() | {"avx512_bf16", "amx_bf16"}
        monkeypatch.setattr(runtime, "cpu_flags", lambda: flags)
    return str(request.param)


@pytest.fixture
def tiny_pickle(tmp_path: Path) -> Path:
    return write_pickle(tmp_path / "tiny.pkl", tiny_dataset())


@pytest.fixture(scope="session")
def synth_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic cache with splits, shared by the tests that only read it."""
    from pipeline.data.cache import ingest, open_cache
    from pipeline.data.splits import write_splits
    from pipeline.source.synth import SynthConfig, write_synth

    d = tmp_path_factory.mktemp("synth")
    write_synth(d / "raw.pkl", SynthConfig(classes=5, per_class=30, seed=1))
    ingest(d / "raw.pkl", d / "cache")
    write_splits(open_cache(d / "cache"))
    return d / "cache"


@pytest.fixture(scope="session")
def hagrid_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """PYSKL's trained hand-gesture model (../shared/data/pyskl), imported once by `skpipe import`:
    (the run directory, the command's output). Skips where the checkpoint or MediaPipe is absent."""
    if not (SHARED_DATA / "pyskl" / "hagrid.pth").exists():
        pytest.skip("../shared/data/pyskl (PYSKL's hand checkpoint) is absent")
    pytest.importorskip("mediapipe", reason="the video extra (MediaPipe Hands) is not installed")
    from click.testing import CliRunner

    from cli.main import main

    run = tmp_path_factory.mktemp("zoo") / "hagrid"
    pyskl = SHARED_DATA / "pyskl"
    args = ["import", str(pyskl / "hagrid.pth"), "--config", str(pyskl / "stgcnpp_gesture.py"),
            "--classes", "gesture40", "--out", str(run)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    return run, r.output


# what `-m 'not slow'` leaves out: whole modules that learn, decode video or run live, and every
# test of PYSKL's hand model (its fixture imports the checkpoint and runs MediaPipe)
SLOW_MODULES = ("test_learning.py", "test_video.py", "test_multiperson.py", "test_live.py",
                "test_distributed.py", "test_bombs.py")
SLOW_FIXTURES = ("hagrid_run",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_MODULES or set(SLOW_FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
