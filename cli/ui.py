"""Rich helpers shared by the commands: progress bars, errors, byte sizes."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pipeline import SkpipeError


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """`skpipe info | head`: a reader that closed the pipe is a normal end (exit 0, silent)."""
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0)


console = _Console()
F = TypeVar("F", bound=Callable[..., Any])

STAGE_LABELS = {"read": "Reading pickle (MiB)", "convert": "Preprocessing clips"}


# C0 and C1 controls, DEL, line and paragraph separators, bidi overrides: what could move the
# cursor, recolour the terminal, forge a second line or reorder text
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def plain(text: str) -> str:
    """`text` with every control character shown as its escape (`\\x1b`, `\\n`): whatever a file
    held, it prints as one line and paints nothing; a file name that is not UTF-8 shows its
    undecodable bytes as escapes (`\\udcff`) rather than failing to print."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def shown(text: object) -> str:
    """A value from a file, for rich: controls escaped (`plain`) and markup escaped."""
    return escape(plain(str(text)))


def user_errors(fn: F) -> F:
    """Turn SkpipeError into a one-line click error (exit 1, no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SkpipeError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:
            click.echo("Interrupted: nothing half-written was kept (outputs are written atomically); "
                       "run the same command again to continue.", err=True)
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def stage_progress(labels: dict[str, str] | None = None) -> Iterator[Callable[[str, int, int], None]]:
    """A `progress(stage, done, total)` callback drawing one rich bar per stage in a terminal;
    elsewhere (a pipe, a log) a line every QUIET_SECONDS, and no blank line left behind."""
    labels = {**STAGE_LABELS, **(labels or {})}
    tasks: dict[str, TaskID] = {}
    if not console.is_terminal:
        due = _every_quiet_seconds()

        def line(stage: str, done: int, total: int) -> None:
            if done < total and due():
                console.print(f"{labels.get(stage, stage)}: {done:,} of {total:,}")

        yield line
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
    ) as bar:

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


def configure_process(threads: int | None = None) -> str:
    """The process-wide CPU settings a command runs with (threads, flush-to-zero, allocator),
    applied here at the entry point, never by the library. Default threads: the cores other
    processes leave idle, shared between this machine's processes of a distributed run."""
    from pipeline.run.runtime import configure_cpu, default_threads
    from pipeline.train.distributed import launch_env

    return configure_cpu(threads or default_threads(launch_env().local_world))


QUIET_SECONDS = 30.0  # without a terminal (a pipe, a log file), a line at most this often


@contextlib.contextmanager
def batch_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` callback for long passes over batches: a transient bar in a
    terminal; elsewhere a line every QUIET_SECONDS, so a log shows the work is moving."""

    if console.is_terminal:
        with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task(label, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    due = _every_quiet_seconds()

    def line(done: int, total: int) -> None:
        if done < total and due():
            console.print(f"{label}: {done:,} of {total:,} batches")

    yield line


@contextlib.contextmanager
def download_progress(label: str) -> Iterator[Callable[[int, int | None], None]]:
    """A `progress(bytes, total)` callback for downloads: a transient bar of bytes in a terminal;
    elsewhere a line every QUIET_SECONDS."""
    if console.is_terminal:
        from rich.progress import DownloadColumn, TransferSpeedColumn

        with Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task(label, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    due = _every_quiet_seconds()

    def line(done: int, total: int | None) -> None:
        if due():
            console.print(f"{label}: {human_bytes(done)}" + (f" of {human_bytes(total)}" if total else ""))

    yield line


def _every_quiet_seconds() -> Callable[[], bool]:
    """True at most once every QUIET_SECONDS (from now): a log's progress lines, instead of a bar."""
    import time

    last = [time.monotonic()]

    def due() -> bool:
        now = time.monotonic()
        if now - last[0] < QUIET_SECONDS:
            return False
        last[0] = now
        return True

    return due


class ThreadTuner:
    """Between epochs, torch threads follow the cores other processes leave free, with
    hysteresis: a new count is taken only when two epoch starts in a row measure it, and never
    when an epoch already ran slower at it than at the current count. The CLI's, like every
    process-wide setting (a single process only)."""

    def __init__(self) -> None:
        self.pending: int | None = None
        self.rate: dict[int, float] = {}  # threads -> the best samples/s an epoch ran at with them

    def epoch_done(self, samples_per_s: float) -> None:
        import torch

        n = torch.get_num_threads()
        self.rate[n] = max(self.rate.get(n, 0.0), samples_per_s)

    def retune(self, measured: int | None = None) -> tuple[int, int] | None:
        """(old, new) when the thread count changed now."""
        import torch

        from pipeline.run.runtime import default_threads

        old, want = torch.get_num_threads(), measured if measured is not None else default_threads()
        if want == old or (want in self.rate and self.rate[want] < self.rate.get(old, 0.0)):
            self.pending = None  # no change, or a count whose epoch was slower
            return None
        if self.pending != want:  # measured once: wait for the next epoch's start
            self.pending = want
            return None
        self.pending = None
        torch.set_num_threads(want)
        return old, want
