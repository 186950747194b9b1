"""`skpipe extract`: videos -> a PYSKL 2D pickle that `ingest` reads like any other.

Labels come from the folders (`videos/<class>/<video>`) or from a CSV (`video,label[,split]`,
paths relative to the videos folder). The CSV's split column gives `train` / `test` keys (the
`default` protocol); without one the pickle has no split and `build-splits` draws a seeded,
stratified test share grouped by source, as for any pickle without splits.

Many videos: parallel over videos (`jobs` worker processes, each with its own pose backend),
resumable (each finished video is kept as `<out>.parts/<frame_dir>.npz` and not redone by the
next run; the folder is removed once the pickle is written), and a video that fails is reported
and left out, never written as zeros.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import multiprocessing
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import numpy as np

from pipeline import SkpipeError
from pipeline.files.atomic import atomic_write_bytes, check_target
from pipeline.source.pose import (
    BACKENDS,
    CONFIDENCE,
    MAX_PERSONS,
    MULTI_BACKEND,
    backend_for,
    check_confidence,
    protobuf_problem,
    quiet_native_logs,
)
from pipeline.source.raw import MAX_LABEL, RawData, raw_from_object, short_repr
from pipeline.source.video import (
    EXTRACT_LAYOUTS,
    MAX_VIDEO_FRAMES,
    VIDEO_SUFFIXES,
    VideoPose,
    extract_video,
    is_video,
    video_problem,
)

CSV_SPLITS = ("train", "test")
MAX_CSV_BYTES = 64 << 20
MAX_VIDEOS = 1_000_000
VideosDone = Callable[[int, int], None]  # (videos finished, frames decoded) since the last call


@dataclass(frozen=True)
class VideoItem:
    """One video to extract, and what the pickle will say of it."""

    path: Path
    frame_dir: str
    label: int
    split: str | None = None


@dataclass(frozen=True)
class Listing:
    """The videos of a request, with their classes (None: unlabelled) and whether splits came."""

    items: list[VideoItem]
    classes: list[str] | None


@dataclass(frozen=True)
class VideoSummary:
    frame_dir: str
    frames: int
    missing: int  # frames without a person


@dataclass
class ExtractResult:
    out: Path | None  # None when nothing could be written
    videos: list[VideoSummary] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (video, one-line reason)
    reused: int = 0  # finished by an earlier, interrupted run
    seconds: float = 0.0
    classes: list[str] | None = None

    @property
    def frames(self) -> int:
        return sum(v.frames for v in self.videos)


def _walk(root: Path) -> list[Path]:
    """Video files under `root`, sorted (deterministic order), following no symlinked folder."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        # regular files only: a link to /dev/zero or a FIFO named .mp4 is no video
        found += [p for p in (Path(dirpath) / f for f in sorted(filenames)) if is_video(p) and p.is_file()]
        if len(found) > MAX_VIDEOS:
            raise SkpipeError(f"{root}: more than {MAX_VIDEOS:,} videos")
    return found


def _frame_dirs(paths: list[Path], root: Path) -> list[str]:
    """PYSKL's frame_dir: the file name without its suffix, unique within the pickle."""
    names: dict[str, Path] = {}
    for p in paths:
        name = os.fsencode(p.stem).decode("utf-8", "backslashreplace")  # a non-UTF-8 name, escaped
        if name in names:
            raise SkpipeError(f"two videos are named {short_repr(name)}: {names[name].relative_to(root)} and "
                              f"{p.relative_to(root)} (frame_dir comes from the file name; rename one)")
        names[name] = p
    return list(names)


def list_videos(source: Path, labels_csv: Path | None = None) -> Listing:
    """The videos of `source` (one file, or a folder) with labels from the folders or the CSV."""
    source = Path(source)
    if not source.exists():
        raise SkpipeError(f"{source}: no such file or folder")
    if not (source.is_file() or source.is_dir()):
        raise SkpipeError(f"{source}: not a regular file or folder")
    if source.is_file():
        if not is_video(source):
            raise SkpipeError(f"{source}: not a video file (expected one of .mp4, .avi, .mov, .mkv, ...)")
        if labels_csv is not None:
            raise SkpipeError("--labels names the videos of a folder; give the folder, not one file")
        return Listing([VideoItem(source, source.stem, 0)], None)
    if labels_csv is not None:
        return _from_csv(source, Path(labels_csv))
    paths = _walk(source)
    if not paths:
        raise SkpipeError(f"{source}: no videos in it (looked for {', '.join(VIDEO_SUFFIXES)})")
    frame_dirs = _frame_dirs(paths, source)
    depths = {len(p.relative_to(source).parts) for p in paths}
    if depths == {1}:  # videos directly in the folder: unlabelled (predict, or label later)
        return Listing([VideoItem(p, fd, 0) for p, fd in zip(paths, frame_dirs, strict=True)], None)
    if depths != {2}:
        raise SkpipeError(f"{source}: expected <class>/<video> one level deep (or --labels FILE.csv); "
                          "found videos at several depths")
    classes = sorted({p.parent.name for p in paths})
    _check_classes(classes, source)
    index = {c: i for i, c in enumerate(classes)}
    items = [VideoItem(p, fd, index[p.parent.name]) for p, fd in zip(paths, frame_dirs, strict=True)]
    return Listing(items, classes)


def _check_classes(classes: list[str], where: Path) -> None:
    if len(classes) > MAX_LABEL:
        raise SkpipeError(f"{where}: {len(classes):,} classes, more than {MAX_LABEL:,}")


def _from_csv(root: Path, path: Path) -> Listing:
    """Rows `video,label[,split]`: video relative to `root`, label a class name."""
    if not path.is_file():
        raise SkpipeError(f"{path}: no such labels file")
    if path.stat().st_size > MAX_CSV_BYTES:
        raise SkpipeError(f"{path}: larger than any labels file ({MAX_CSV_BYTES >> 20} MB)")
    inside = root.resolve()
    present = {os.path.normpath(inside / p.relative_to(root)) for p in _walk(root)}  # listed once
    try:
        text = path.read_text(encoding="utf-8-sig")
        lines = text.count("\n")
        if lines > len(present) + 1000:  # far more lines than videos: refused unparsed
            raise SkpipeError(f"{path}: {lines:,} lines, but {root} holds {len(present):,} video(s)")
        rows = list(csv.DictReader(io.StringIO(text)))
    except (UnicodeDecodeError, csv.Error) as e:
        raise SkpipeError(f"{path}: not a readable CSV ({short_repr(str(e), 80)})") from None
    if not rows:
        raise SkpipeError(f"{path}: no rows (expected a header video,label[,split] and one row per video)")
    columns = set(rows[0])
    for need in ("video", "label"):
        if need not in columns:
            raise SkpipeError(f"{path}: no {need!r} column (expected video,label[,split]; found "
                              f"{short_repr(sorted(c for c in columns if c))})")
    with_split = "split" in columns
    if len(rows) > len(present):
        raise SkpipeError(f"{path}: {len(rows):,} rows, but {root} holds {len(present):,} video(s)")
    _confine(rows, root, inside, path)
    missing = next((r["video"] for r in rows if os.path.normpath(inside / r["video"]) not in present), None)
    if missing is not None:
        raise SkpipeError(f"{path}: a video is not found under {root}: {short_repr(missing)}")
    paths = [root / r["video"] for r in rows]
    if len({p.resolve() for p in paths}) != len(paths):
        raise SkpipeError(f"{path}: a video is listed twice")
    classes = sorted({(r["label"] or "").strip() for r in rows})
    if "" in classes:
        raise SkpipeError(f"{path}: a row has an empty label")
    _check_classes(classes, path)
    index = {c: i for i, c in enumerate(classes)}
    items = []
    for r, p, fd in zip(rows, paths, _frame_dirs(paths, root), strict=True):
        split = (r.get("split") or "").strip() if with_split else None
        if with_split and split not in CSV_SPLITS:
            raise SkpipeError(f"{path}: split of {short_repr(r['video'])} is {short_repr(split)}; "
                              f"expected {' or '.join(CSV_SPLITS)} (val is carved out of train)")
        items.append(VideoItem(p, fd, index[r["label"].strip()], split))
    return Listing(items, classes)


def _confine(rows: list[dict[str, Any]], root: Path, inside: Path, path: Path) -> None:
    """Every row names a video file inside `root` (resolved: `inside`): no absolute path, no `..`
    out of it, a video's suffix (checked before any file is opened or decoded)."""
    for r in rows:
        name = r.get("video") or ""
        target = Path(os.path.normpath(inside / name))  # lexical: no file is touched yet
        if Path(name).is_absolute() or not target.is_relative_to(inside):
            raise SkpipeError(f"{path}: {short_repr(name)} is outside {root} (rows name videos inside "
                              "the folder)")
        if not is_video(target):
            raise SkpipeError(f"{path}: {short_repr(name)} is not a video file (expected one of "
                              f"{', '.join(VIDEO_SUFFIXES)})")


# --- parts: one finished video each, so an interrupted run resumes ---------------------------

@dataclass(frozen=True)
class Settings:
    """How every video of one extraction is read: checked once (`_settings`), sent to workers."""

    layout: str
    backend: str
    max_frames: int
    detection: float = CONFIDENCE[0]
    tracking: float = CONFIDENCE[1]
    persons: int = 1  # > 1: the tracked multi-person backend, M persons per clip


def _fingerprint(item: VideoItem, s: Settings) -> str:
    """What a part was made from: the video's size and time, and the extraction's settings."""
    st = item.path.stat()
    text = f"{item.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{s.layout}|{s.backend}|{s.max_frames}"
    if (s.detection, s.tracking) != (0.5, 0.5):  # parts made before these were options: 0.5 / 0.5
        text += f"|{s.detection}|{s.tracking}"
    if s.persons > 1:
        text += f"|persons{s.persons}"
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]  # any file name


def parts_dir(out: Path) -> Path:
    return out.parent / f"{out.name}.parts"


def _part_path(parts: Path, item: VideoItem) -> Path:
    digest = hashlib.sha256(item.frame_dir.encode()).hexdigest()[:12]  # file-system safe
    return parts / f"{digest}.npz"


def _write_part(path: Path, pose: VideoPose, fingerprint: str) -> None:
    buf = io.BytesIO()
    np.savez(buf, keypoint=pose.keypoint, keypoint_score=pose.keypoint_score,
             img_shape=np.array(pose.img_shape, np.int64), missing=np.array(pose.missing, np.int64),
             fingerprint=np.array(fingerprint))
    atomic_write_bytes(path, buf.getvalue())


def _read_part(path: Path, fingerprint: str) -> VideoPose | None:
    """A part written by an earlier run for the same video and settings, else None (redo it)."""
    if not path.is_file() or path.stat().st_size > 1 << 30:
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) != fingerprint:
                return None
            kp, sc = z["keypoint"], z["keypoint_score"]
            h, w = (int(v) for v in z["img_shape"])
            missing = int(z["missing"])
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None  # a part cut short by a kill: redo that video
    if kp.ndim != 4 or sc.shape != kp.shape[:3] or kp.dtype != np.float16 or sc.dtype != np.float16:
        return None
    return VideoPose(kp, sc, (h, w), missing)


# --- workers ---------------------------------------------------------------------------------

_frames_queue: Any = None  # in a worker: where it reports frames decoded, for the progress bar


def _init_worker(queue: Any) -> None:
    global _frames_queue
    _frames_queue = queue


def _work(item: VideoItem, part: Path, fingerprint: str, s: Settings,
          report: Callable[[int], None] | None = None) -> tuple[str, int, int, str | None]:
    """Extract one video into its part, in a worker process or in this one; (frame_dir, frames,
    missing, error). Frames decoded go to `report`, else to the pool's queue."""
    if report is None and _frames_queue is not None:
        report = _frames_queue.put
    try:
        with quiet_native_logs():
            extra = (s.persons,) if s.persons > 1 else ()
            pose_model = BACKENDS[s.backend](s.detection, s.tracking, *extra)
            try:
                pose = extract_video(item.path, pose_model, s.layout, s.max_frames, report, s.persons)
            finally:
                pose_model.close()
        _write_part(part, pose, fingerprint)
        return item.frame_dir, pose.total_frames, pose.missing, None
    except SkpipeError as e:
        return item.frame_dir, 0, 0, str(e)
    except Exception as e:  # a decoder or backend failure on one video must not end the others
        return item.frame_dir, 0, 0, f"{item.path}: {type(e).__name__}: {short_repr(str(e), 100)}"


def _run_inline(todo: list[tuple[VideoItem, Path, str]], settings: Settings, progress: VideosDone | None
                ) -> Iterator[tuple[str, int, int, str | None]]:
    """Each video in this process, one after another: one job (the default, and every prediction
    from a video) starts no process, so a script without a `__main__` guard, or code read from
    stdin, works (a spawned worker re-imports the caller's `__main__`)."""
    report = (lambda n: progress(0, n)) if progress is not None else None
    for item, part, fp in todo:
        result = _work(item, part, fp, settings, report)
        if progress is not None:
            progress(1, 0)
        yield result


def _run_workers(todo: list[tuple[VideoItem, Path, str]], settings: Settings, jobs: int,
                 progress: VideosDone | None) -> Iterator[tuple[str, int, int, str | None]]:
    """Each video in a process of a pool of `jobs` (spawned: no torch or thread state is
    inherited, and MediaPipe's native logging stays out of this process's terminal); one job
    runs in this process."""
    if not todo:
        return
    if min(jobs, len(todo)) == 1:
        yield from _run_inline(todo, settings, progress)
        return
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    cores = len(os.sched_getaffinity(0))  # more workers than cores only add memory
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo), cores), mp_context=ctx,
                             initializer=_init_worker, initargs=(queue,)) as pool:
        pending: set[Future[tuple[str, int, int, str | None]]] = {
            pool.submit(_work, item, part, fp, settings) for item, part, fp in todo}
        try:
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                frames = _drain(queue)
                if progress is not None and frames:
                    progress(0, frames)
                for f in done:
                    if progress is not None:
                        progress(1, 0)
                    try:
                        yield f.result()
                    except BrokenProcessPool:
                        raise SkpipeError(
                            "a pose worker process ended abruptly (killed, out of memory, or a crash in the "
                            "video decoder or pose backend); the videos finished so far are kept: run the "
                            "same command again, or with --jobs 1 to see the video's own error") from None
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def _drain(queue: Any) -> int:
    frames = 0
    with contextlib.suppress(Empty):
        while True:
            frames += queue.get_nowait()
    return frames


@dataclass
class _Extraction:
    poses: dict[str, VideoPose] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)
    reused: int = 0


def _extract_all(items: list[VideoItem], parts: Path, settings: Settings, jobs: int,
                 progress: VideosDone | None, on_start: Callable[[int, int], None] | None) -> _Extraction:
    """Every video of `items` as a part in `parts`, reusing those an earlier run finished."""
    found = _Extraction()
    todo = []
    for item in items:
        if (problem := video_problem(item.path)) is not None:  # junk: refused from its first bytes
            found.failed.append((item.frame_dir, problem))
            continue
        fp = _fingerprint(item, settings)
        part = _part_path(parts, item)
        done = _read_part(part, fp)
        if done is not None:
            found.poses[item.frame_dir] = done
        else:
            todo.append((item, part, fp))
    found.reused = len(found.poses)
    if on_start is not None:
        on_start(len(items), found.reused)
    errors = {fd: e for fd, _, _, e in _run_workers(todo, settings, jobs, progress) if e is not None}
    for item, part, fp in todo:
        if item.frame_dir in errors:
            found.failed.append((item.frame_dir, errors[item.frame_dir]))
        elif (pose := _read_part(part, fp)) is not None:
            found.poses[item.frame_dir] = pose
        else:
            found.failed.append((item.frame_dir, f"{item.path}: its extraction left no readable result"))
    return found


def extract(source: Path, out: Path, labels_csv: Path | None = None, layout: str = "coco17",
            backend: str | None = None, jobs: int = 1, max_frames: int = MAX_VIDEO_FRAMES,
            force: bool = False, progress: VideosDone | None = None,
            on_start: Callable[[int, int], None] | None = None,
            confidence: tuple[float, float] = CONFIDENCE, persons: int = 1) -> ExtractResult:
    """Extract every video of `source` into the pickle `out`; see the module's docstring.
    `on_start(videos, reused)` is called once the videos are listed."""
    settings = _settings(layout, backend, jobs, max_frames, confidence, persons)
    out = Path(out)
    check_target(out, force, "pickle")
    listing = list_videos(source, labels_csv)
    parts = parts_dir(out)
    try:
        parts.mkdir(exist_ok=True)
    except OSError as e:
        raise SkpipeError(f"cannot write {out}: {e.strerror} (its folder of finished videos, "
                          f"{parts.name}, could not be made)") from None
    start = time.perf_counter()
    found = _extract_all(listing.items, parts, settings, jobs, progress, on_start)
    kept = [item for item in listing.items if item.frame_dir in found.poses]
    result = ExtractResult(None, [VideoSummary(i.frame_dir, found.poses[i.frame_dir].total_frames,
                                               found.poses[i.frame_dir].missing) for i in kept],
                           found.failed, found.reused, classes=listing.classes)
    if kept:
        data = _pickle_dict(kept, found.poses, listing.classes)
        raw_from_object(data, out, 0, "")  # what ingest will check, checked before writing
        atomic_write_bytes(out, pickle.dumps(data, protocol=4), force=force)
        result.out = out
        if not found.failed:  # kept while some failed: a re-run retries only those
            shutil.rmtree(parts, ignore_errors=True)
    elif not any(parts.iterdir()):  # nothing extracted, nothing to resume: leave nothing behind
        parts.rmdir()
    result.seconds = time.perf_counter() - start
    return result


def _settings(layout: str, backend: str | None, jobs: int, max_frames: int,
              confidence: tuple[float, float] = CONFIDENCE, persons: int = 1) -> Settings:
    """The extraction's settings, checked; the backend is the layout's unless named (the tracked
    multi-person one for `persons` > 1)."""
    if layout not in EXTRACT_LAYOUTS:
        raise SkpipeError(f"--layout must be one of {', '.join(EXTRACT_LAYOUTS)}, got {layout!r}")
    if not 1 <= persons <= MAX_PERSONS:
        raise SkpipeError(f"--persons must be in 1..{MAX_PERSONS}, got {persons}")
    if persons > 1:
        if backend_for(layout) != "mediapipe":
            raise SkpipeError(f"--persons {persons}: the {layout} backend follows one hand per clip; several "
                              "persons apply to body layouts (coco17, mediapipe33)")
        if backend not in (None, MULTI_BACKEND):
            raise SkpipeError(f"--persons {persons} needs the {MULTI_BACKEND} backend, not {backend}")
        if jobs < 1 or max_frames < 1:
            raise SkpipeError("--jobs and --max-frames must be >= 1")
        detection, tracking = check_confidence(*confidence)
        if problem := protobuf_problem():
            raise SkpipeError(problem)
        return Settings(layout, MULTI_BACKEND, max_frames, detection, tracking, persons)
    backend = backend or backend_for(layout)
    if backend not in BACKENDS:
        raise SkpipeError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != backend_for(layout):
        raise SkpipeError(f"the {backend} backend does not give {layout} skeletons; "
                          f"{backend_for(layout)} does")
    if jobs < 1 or max_frames < 1:
        raise SkpipeError("--jobs and --max-frames must be >= 1")
    detection, tracking = check_confidence(*confidence)
    problem = protobuf_problem()  # once here, not once per video in the workers
    if problem:
        raise SkpipeError(problem)
    return Settings(layout, backend, max_frames, detection, tracking)


def _pickle_dict(items: list[VideoItem], poses: dict[str, VideoPose], classes: list[str] | None
                 ) -> dict[str, Any]:
    data: dict[str, Any] = {"annotations": [poses[i.frame_dir].annotation(i.frame_dir, i.label)
                                            for i in items]}
    splits = {s: [i.frame_dir for i in items if i.split == s] for s in CSV_SPLITS}
    if any(i.split is not None for i in items):
        data["split"] = {s: names for s, names in splits.items() if names}
    if classes is not None:
        data["classes"] = classes
    return data


def extract_some(source: Path, layout: str = "coco17", jobs: int = 1, max_frames: int = MAX_VIDEO_FRAMES,
                 persons: int = 1) -> tuple[RawData | None, list[tuple[str, str]]]:
    """The videos of `source` that could be used, as a loaded pickle (None when none could), and
    (frame_dir, why) for each left out: `predict DIR` goes on past a bad video, as `extract` does."""
    settings = _settings(layout, None, jobs, max_frames, persons=persons)
    listing = list_videos(source)
    with tempfile.TemporaryDirectory(prefix="skpipe-extract-") as parts:
        found = _extract_all(listing.items, Path(parts), settings, jobs, None, None)
    good = [i for i in listing.items if i.frame_dir in found.poses]
    if not good:
        return None, list(found.failed)
    return raw_from_object(_pickle_dict(good, found.poses, None), Path(source), 0, ""), list(found.failed)


def extract_raw(source: Path, layout: str = "coco17", backend: str | None = None, jobs: int = 1,
                max_frames: int = MAX_VIDEO_FRAMES, persons: int = 1) -> RawData:
    """The videos of `source` as a loaded pickle, in memory (for `predict VIDEO`): the same
    annotations `extract` writes, so predicting on either gives the same answer. Any video that
    fails is an error here (`extract` skips and reports such videos instead)."""
    settings = _settings(layout, backend, jobs, max_frames, persons=persons)
    listing = list_videos(source)
    with tempfile.TemporaryDirectory(prefix="skpipe-extract-") as parts:
        found = _extract_all(listing.items, Path(parts), settings, jobs, None, None)
    if found.failed:
        n = len(found.failed)
        raise SkpipeError(found.failed[0][1] if n == 1 else
                          f"{n} of {len(listing.items)} videos failed, first: {found.failed[0][1]} "
                          "(skpipe extract skips such videos)")
    data = _pickle_dict(listing.items, found.poses, None)
    return raw_from_object(data, Path(source), 0, "")
