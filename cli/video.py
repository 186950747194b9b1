"""`skpipe extract` (videos -> a PYSKL pickle) and `skpipe render` (a clip drawn as a video)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cli.options import confidence_options, force_option, frame_dir_option, persons_option
from cli.ui import console, shown, user_errors
from pipeline.source.pose import BACKENDS
from pipeline.source.video import EXTRACT_LAYOUTS, MAX_VIDEO_FRAMES

MOST_MISSING = 10  # videos listed in the summary, those with most frames without a person first


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The pickle to write (PYSKL 2D format).")
@click.option("--labels", "labels_csv", type=click.Path(path_type=Path),
              help="CSV with columns video,label[,split] (video relative to SOURCE; split train|test). "
                   "Default: class-per-folder, SOURCE/<class>/<video>.")
@click.option("--layout", type=click.Choice(EXTRACT_LAYOUTS), default=EXTRACT_LAYOUTS[0], show_default=True,
              help="Joints written: COCO-17 (mapped from MediaPipe's 33), MediaPipe's 33 landmarks, or "
                   "MediaPipe Hands' 21 (handmp: the most confident hand).")
@click.option("--backend", type=click.Choice(list(BACKENDS)),
              help="The pose model (default: the layout's; one person or hand per frame).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Videos extracted at once, one process each.")
@click.option("--max-frames", type=click.IntRange(min=1), default=MAX_VIDEO_FRAMES, show_default=True,
              help="Frames read per video at most.")
@persons_option(1)
@confidence_options
@force_option("OUT if it exists")
@user_errors
def extract(source: Path, out: Path, labels_csv: Path | None, layout: str, backend: str | None, jobs: int,
            max_frames: int, persons: int, min_detection: float, min_tracking: float, force: bool) -> None:
    """Find the person in every frame of SOURCE (a video or a folder of them) and write the
    skeletons as a pickle that `skpipe ingest` reads. An interrupted run continues where it
    stopped."""
    from pipeline.source.extract import extract as run_extract

    with Progress(TextColumn("Extracting poses"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("videos · {task.fields[fps]} frames/s"), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("videos", total=None, fps="-")
        frames = [0]

        def on_start(videos: int, reused: int) -> None:
            bar.update(task, total=videos, completed=reused)

        def progress(videos: int, new_frames: int) -> None:
            frames[0] += new_frames
            elapsed = bar.tasks[0].elapsed or 0.0
            bar.update(task, advance=videos, fps=f"{frames[0] / elapsed:.1f}" if elapsed > 0 else "-")

        r = run_extract(source, out, labels_csv, layout, backend, jobs, max_frames, force, progress, on_start,
                        (min_detection, min_tracking), persons)
    for _, reason in r.failed:
        console.print(f"[yellow]skipped[/yellow] {shown(reason)}", soft_wrap=True)  # one line each
    if r.out is None:
        raise click.ClickException(f"no video could be used ({len(r.failed)} failed); nothing written")
    t = Table(title=f"Pickle {shown(r.out)}", show_header=False)
    t.add_row("videos", f"{len(r.videos):,} ({r.reused:,} from an earlier run)" if r.reused else
              f"{len(r.videos):,}")
    t.add_row("classes", "none (unlabelled: label 0)" if r.classes is None else
              shown(", ".join(r.classes[:8]) + (" ..." if len(r.classes) > 8 else "")))
    missing = sum(v.missing for v in r.videos)
    t.add_row("frames", f"{r.frames:,}, {missing:,} without a person ({missing / max(1, r.frames):.1%})")
    t.add_row("layout", layout)
    t.add_row("seconds", f"{r.seconds:.1f}")
    console.print(t)
    worst = sorted((v for v in r.videos if v.missing), key=lambda v: -v.missing / v.frames)[:MOST_MISSING]
    if worst:
        w = Table(title="Frames without a person")
        for col in ("video", "frames", "without a person"):
            w.add_column(col, justify="left" if col == "video" else "right")
        for v in worst:
            w.add_row(shown(v.frame_dir), f"{v.frames:,}", f"{v.missing:,} ({v.missing / v.frames:.0%})")
        console.print(w)
    if r.failed:
        raise click.ClickException(f"{len(r.failed)} video(s) failed and were left out (listed above); "
                                   "the pickle holds the others")


@click.command()
@click.argument("raw", type=click.Path(path_type=Path))
@frame_dir_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="A .gif (animated image) or .mp4 / .avi (needs the video extra).")
@click.option("--video", type=click.Path(path_type=Path),
              help="Draw on this video's frames (the one the clip was extracted from).")
@click.option("--layout", metavar="NAME|FILE.toml",
              help="The clip's joint layout (default: the built-in one with its number of joints).")
@click.option("--view", metavar="front|side|top|AZ,EL",
              help="A 3D clip seen from the front (default), the side, the top, or AZIMUTH,ELEVATION "
                   "degrees.")
@persons_option(1)
@force_option("OUT if it exists")
@user_errors
def render(raw: Path, frame_dir: str | None, out: Path, video: Path | None, layout: str | None,
           view: str | None, persons: int, force: bool) -> None:
    """Draw one clip of RAW (a pickle, or a video to extract) as an animation of its skeleton."""
    from cli.data import layout_option
    from pipeline.source.render import render_clip

    with console.status("Rendering"):
        r = render_clip(raw, out, frame_dir, video, layout_option(layout), force=force, view=view,
                        persons=persons)
    console.print(f"Wrote {shown(r.path)}: {shown(r.frame_dir)}, {r.frames:,} frames at {r.fps:g} fps, "
                  f"{r.size[1]}x{r.size[0]}")
