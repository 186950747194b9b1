"""Where a cache lives: a local path, or any URL fsspec knows (file://, memory://, s3://, ...).

Caches are built locally (atomic renames need a real filesystem) and may then be copied to
shared storage; every reader (info, train, evaluate) accepts the URL, so several machines can
train from one cache. Zarr and pandas read URLs through fsspec themselves.
"""

from __future__ import annotations

from pathlib import Path

Location = str | Path


def is_url(loc: Location) -> bool:
    return "://" in str(loc)


def join(loc: Location, name: str) -> Location:
    if is_url(loc):
        return f"{str(loc).rstrip('/')}/{name}"
    return Path(loc) / name


def exists(loc: Location) -> bool:
    if not is_url(loc):
        return Path(loc).exists()
    import fsspec

    fs, path = fsspec.core.url_to_fs(str(loc))
    return bool(fs.exists(path))


def read_bytes(loc: Location) -> bytes:
    if not is_url(loc):
        return Path(loc).read_bytes()
    import fsspec

    with fsspec.open(str(loc), "rb") as f:
        data: bytes = f.read()
    return data


def normalize(loc: Location) -> Location:
    """A URL stays a string (Path would fold its '//'); anything else becomes a Path."""
    return str(loc) if is_url(loc) else Path(loc)
