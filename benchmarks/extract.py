"""`skpipe extract` (issue 17), measured in one run on this machine.

(a) the pose backend alone on the development video, in this process, `--repeat` times: frames
    per wall second, frames per CPU second (this process's CPU time over all its threads, so
    "per core"), and the share of frames with a person found;
(b) `skpipe extract` of `--copies` copies of the video with --jobs 1 and --jobs 2 (whole
    command: worker start-up, decoding, pose, the pickle), frames per wall second.

    python -m benchmarks.extract [--video PATH] [--repeat 3] [--copies 4]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pipeline.source.extract import extract
from pipeline.source.pose import MediaPipePose, quiet_native_logs
from pipeline.source.video import extract_video

DEV_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "demo_skeleton.mp4"


def backend_rate(video: Path, repeat: int) -> None:
    walls, cpus, frames, found = [], [], 0, 0.0
    for _ in range(repeat):
        with quiet_native_logs():
            pose = MediaPipePose()
            w0, c0 = time.perf_counter(), time.process_time()
            v = extract_video(video, pose, "coco17")
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
            pose.close()
        frames, found = v.total_frames, 1 - v.missing / v.total_frames
    print(f"(a) backend on {video.name}: {frames} frames {v.img_shape[1]}x{v.img_shape[0]}, "
          f"person found in {found:.1%} of frames")
    print(f"    {frames / statistics.median(walls):.1f} frames/s wall, "
          f"{frames / statistics.median(cpus):.1f} frames per CPU-second (median of {repeat}; "
          f"CPU {statistics.median(cpus) / statistics.median(walls):.2f} cores busy)")


def command_rate(video: Path, copies: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "videos" / "act"
        root.mkdir(parents=True)
        for i in range(copies):
            shutil.copy(video, root / f"clip{i}{video.suffix}")
        for jobs in (1, 2):
            t0 = time.perf_counter()
            r = extract(root.parent, Path(d) / f"raw{jobs}.pkl", jobs=jobs)
            wall = time.perf_counter() - t0
            print(f"(b) skpipe extract, {copies} videos, --jobs {jobs}: {r.frames / wall:.1f} frames/s "
                  f"({wall:.1f} s, {len(r.failed)} failed)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", type=Path, default=DEV_VIDEO)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--copies", type=int, default=4)
    a = ap.parse_args()
    backend_rate(a.video, a.repeat)
    command_rate(a.video, a.copies)
