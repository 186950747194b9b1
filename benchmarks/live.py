"""`skpipe live` on this machine: frames/s, pose / model / end-to-end latency, and drops.

    python -m benchmarks.live --body RUN --hand RUN [--seconds 10]

For the body backend (MediaPipe Pose, a COCO-17 run) and the hand backend (MediaPipe Hands, e.g.
the imported hagrid run), on the shared videos resized to 640x480 and 1920x1080 at 30 fps and
looped to `--seconds`: once as fast as frames are taken (throughput, nothing dropped) and once
with --realtime (as a 30 fps camera delivers them: the frames dropped and the latency a viewer
sees). One run each; the machine is shared, so read the ratios, not the third digit.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def resized(src: Path, out: Path, size: tuple[int, int], seconds: float) -> Path:
    import cv2

    cap = cv2.VideoCapture(str(src))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(f, size))
    cap.release()
    w = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for i in range(int(seconds * 30)):
        w.write(frames[i % len(frames)])
    w.release()
    return out


def main() -> None:
    import skpipe
    from pipeline.infer.live import LiveConfig, run_live
    from pipeline.source.pose import quiet_native_logs

    ap = argparse.ArgumentParser()
    ap.add_argument("--body", type=Path, required=True)
    ap.add_argument("--hand", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--videos", type=Path, default=SHARED / "videos")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # as `skpipe live` runs the model: the pose workers take the other cores
    cases = (("body", a.body, a.videos / "demo_skeleton.mp4", 32, 8),
             ("hand", a.hand, a.videos / "hand.mp4", 10, 5))
    print("| backend | frame size | mode | frames/s | dropped | pose ms (median / p95) "
          "| model ms (median / p95) | end to end ms (median / p95) | found |")
    print("|---|---|---|---:|---:|---|---|---|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, run, video, window, stride in cases:
            model = skpipe.load(run)
            for size in ((640, 480), (1920, 1080)):
                clip = resized(video, Path(tmp) / f"{kind}{size[0]}.mp4", size, a.seconds)
                for realtime in (False, True):
                    with quiet_native_logs():
                        s = run_live(model, LiveConfig(str(clip), window, stride, realtime), lambda _: None)
                    mode = "realtime 30 fps" if realtime else "as fast"
                    print(f"| {kind} | {size[0]}x{size[1]} | {mode} | {s['fps']:.1f} | "
                          f"{s['dropped'] / max(1, s['frames']):.0%} | "
                          f"{s['pose_ms_median']} / {s['pose_ms_p95']} | "
                          f"{s['model_ms_median']} / {s['model_ms_p95']} | "
                          f"{s['latency_ms_median']} / {s['latency_ms_p95']} | {s['found']:.0%} |",
                          flush=True)


if __name__ == "__main__":
    main()
