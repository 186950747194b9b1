"""Atomic writes: nothing half-written is ever visible under the final name.

A directory is built in a hidden sibling (`.<name>.tmp-<pid>`) and renamed into place only when
complete; an interrupted writer leaves the previous content intact. Leftovers of writers that
died (SIGKILL) are removed the next time the same target is written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipeline import SkpipeError


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(target: Path) -> None:
    """Remove temporaries of `target` left by writers that no longer run."""
    prefix = f".{target.name}.tmp-"
    if not target.parent.is_dir():
        return
    for p in target.parent.iterdir():
        if p.name.startswith(prefix):
            pid = p.name[len(prefix) :].split("-")[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so `finally` blocks clean up on `kill`."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_target(target: Path, force: bool, what: str = "output") -> None:
    """Refuse an existing target unless `force`, and refuse an unwritable parent, before any work."""
    if target.exists() and not force:
        raise SkpipeError(f"{what} {target} already exists (use --force to replace it)")
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise SkpipeError(f"cannot write {target}: {parent} is not a directory")
    ensure_dir(parent)


def ensure_dir(path: Path, what: str = "directory") -> None:
    """`path` as a directory this process can write into (created with its parents), or one line."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SkpipeError(f"cannot create {what} {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise SkpipeError(f"cannot write to {what} {path}: permission denied")


def _umask() -> int:
    """The process's umask, read without changing it (Linux: /proc/self/status)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def plain_mode(path: str | Path, directory: bool) -> None:
    """mkstemp / mkdtemp make 0600 / 0700; give what a plain write would (umask honoured)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def recover_replaced(target: Path) -> bool:
    """Put back a complete old `target` that a replacement moved aside and then died before
    moving the new one in (the moment between the two renames). True if one was restored."""
    target = Path(target)
    if target.exists() or not target.parent.is_dir():
        return False
    prefix = f".{target.name}.tmp-"
    for p in sorted(target.parent.iterdir()):
        if p.name.startswith(prefix) and p.name.endswith("-old"):
            pid = p.name[len(prefix) :].split("-")[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                os.replace(p, target)
                return True
    return False


@contextlib.contextmanager
def atomic_dir(target: Path, force: bool = False, what: str = "output") -> Iterator[Path]:
    """Yield a temporary directory that becomes `target` when the block finishes cleanly."""
    target = Path(target)
    recover_replaced(target)
    check_target(target, force, what)
    sweep_stale(target)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    except OSError as e:
        raise SkpipeError(f"cannot write to {target.parent}: {e.strerror}") from None
    plain_mode(tmp, directory=True)
    with _sigterm_as_interrupt():
        try:
            yield tmp
            _replace_dir(tmp, target, force)
        except OSError as e:
            raise SkpipeError(f"cannot write {target}: {e.strerror or e} (the previous content is "
                              "unchanged)") from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(tmp: Path, target: Path, force: bool) -> None:
    if target.exists():
        if not force:  # appeared while we worked
            raise SkpipeError(f"{target} appeared while writing; not replaced (use --force)")
        old = target.parent / f".{target.name}.tmp-{os.getpid()}-old"
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    else:
        os.replace(tmp, target)


@contextlib.contextmanager
def atomic_file(target: Path, force: bool = True, what: str = "output", make_parent: bool = True
                ) -> Iterator[Path]:
    """Yield a temporary sibling path (same suffix, so writers that go by it keep working) that
    replaces `target` when the block finishes cleanly; on any error, Ctrl-C or SIGTERM it is
    removed and the previous `target` stays. The one temp-then-rename of every single file."""
    target = Path(target)
    if not make_parent and not target.parent.is_dir():  # a run's folder that vanished is not remade
        raise SkpipeError(f"cannot write {target}: no folder {target.parent}")
    check_target(target, force, what)
    sweep_stale(target)  # what a killed writer left behind
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-{os.getpid()}-", suffix=target.suffix,
                                    dir=target.parent)
        os.close(fd)
    except OSError as e:
        raise SkpipeError(f"cannot write {target}: {e.strerror or e}") from None
    tmp = Path(name)
    try:
        yield tmp
        plain_mode(tmp, directory=False)
        os.replace(tmp, target)
    except OSError as e:  # disk full, read-only, quota: the old file is intact
        raise SkpipeError(f"cannot write {target}: {e.strerror or e} (the previous file is "
                          "unchanged)") from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(target: Path, data: bytes, force: bool = True) -> None:
    """Write a file through a temporary sibling and `os.replace`."""
    with atomic_file(target, force) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path, text: str, force: bool = True) -> None:
    atomic_write_bytes(target, text.encode(), force)
