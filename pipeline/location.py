"""Where a cache lives: a local path, or any URL fsspec knows (file://, memory://, s3://, ...).

Caches are built locally (atomic renames need a real filesystem) and may then be copied to
shared storage; every reader (info, train, evaluate) accepts the URL, so several machines can
train from one cache. Zarr and pandas read URLs through fsspec themselves.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import SkpipeError

Location = str | Path


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


def exists(loc: Location) -> bool:
    if not is_url(loc):
        return Path(loc).exists()
    fs, path = filesystem(loc)
    return bool(fs.exists(path))  # type: ignore[attr-defined]


def read_bytes(loc: Location) -> bytes:
    if not is_url(loc):
        return Path(loc).read_bytes()
    import fsspec

    with fsspec.open(str(loc), "rb") as f:
        data: bytes = f.read()
    return data


def normalize(loc: Location) -> Location:
    """A URL stays a string (Path would fold its '//'); anything else becomes an absolute Path,
    so a run records where its cache is whatever directory it is read from later."""
    return str(loc) if is_url(loc) else Path(loc).resolve()
