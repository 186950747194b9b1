"""Where a cache lives: a local path, or any URL fsspec knows (file://, memory://, s3://, ...).

Caches are built locally (atomic renames need a real filesystem) and may then be copied to
shared storage; every reader (info, train, evaluate) accepts the URL, so several machines can
train from one cache. Zarr and pandas read URLs through fsspec themselves.
"""

from __future__ import annotations

import stat
from pathlib import Path

from pipeline import SkpipeError

Location = str | Path

MAX_JSON_BYTES = 16 << 20  # a run's or cache's JSON file (config, splits.json, report)
MAX_TABLE_BYTES = 1 << 30  # a cache's Parquet table (an index of a million clips is ~50 MB)


def is_url(loc: Location) -> bool:
    return "://" in str(loc)


def join(loc: Location, name: str) -> Location:
    if is_url(loc):
        return f"{str(loc).rstrip('/')}/{name}"
    return Path(loc) / name


def filesystem(loc: Location) -> tuple[object, str]:
    """fsspec's (filesystem, path) for a URL; an unknown scheme or a missing backend package is
    one line naming what to install."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(str(loc))
    except ImportError as e:
        raise SkpipeError(f"{loc}: this location needs a package that is not installed ({e})") from None
    except ValueError as e:
        raise SkpipeError(f"{loc}: unknown location scheme ({e})") from None
    except Exception as e:  # fsspec's backends raise their own types (a refused connection, ...)
        raise SkpipeError(f"{loc}: cannot open this location ({type(e).__name__})") from None


def exists(loc: Location) -> bool:
    if not is_url(loc):
        return Path(loc).exists()
    fs, path = filesystem(loc)
    try:
        return bool(fs.exists(path))  # type: ignore[attr-defined]
    except Exception as e:  # network filesystems raise their own types
        raise SkpipeError(f"{loc}: cannot reach this location ({type(e).__name__})") from None


def read_bytes(loc: Location, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes: a link to /dev/zero, a FIFO or an
    oversized file is refused in one line before anything is read (bounded memory and time)."""
    if not is_url(loc):
        path = Path(loc)
        try:
            st = path.stat()
        except OSError as e:
            raise SkpipeError(f"{path}: cannot read ({e.strerror or e})") from None
        if not stat.S_ISREG(st.st_mode):
            raise SkpipeError(f"{path}: not a regular file")
        if st.st_size > limit:
            raise SkpipeError(f"{path}: {st.st_size:,} bytes, more than the {limit:,} such a file may hold")
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    else:
        import fsspec

        try:
            with fsspec.open(str(loc), "rb") as f:
                data = f.read(limit + 1)
        except Exception as e:  # network filesystems raise their own types
            raise SkpipeError(f"{loc}: cannot read ({type(e).__name__})") from None
    if len(data) > limit:
        raise SkpipeError(f"{loc}: more than the {limit:,} bytes such a file may hold")
    return data


def resolve(loc: Location) -> Location:
    """A URL stays a string (Path would fold its '//'); anything else becomes an absolute Path,
    so a run records where its cache is whatever directory it is read from later."""
    return str(loc) if is_url(loc) else Path(loc).resolve()
