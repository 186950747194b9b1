"""manifest.json: schema, provenance and validation of a skpipe cache.

Every later stage reads the manifest through `read_manifest`, which refuses a file of another
schema version or with fields missing, and records `manifest_hash` so that a run can tell when
the cache under it was rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline import SkpipeError
from pipeline.atomic import atomic_write_text
from pipeline.location import Location, exists, join, read_bytes

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
ARRAY_NAME = "skeletons.zarr"
INDEX_NAME = "index.parquet"
SOURCE_SPLITS_NAME = "source_splits.parquet"

INDEX_COLUMNS = (
    "sample", "frame_dir", "label", "class_name", "group", "clip", "total_frames", "frames",
    "valid_frames", "n_persons", "person", "mean_score", "nonfinite", "img_h", "img_w",
)


@dataclass(frozen=True)
class Manifest:
    """The contract between `ingest` and every later stage."""

    schema_version: int
    skpipe_version: str
    created: str
    source: dict[str, Any]  # path, size, sha256
    preprocessing: dict[str, Any]  # PreprocessConfig as a dict
    array: dict[str, Any]  # path, shape, dtype, chunks, codec
    counts: dict[str, Any]
    class_names: list[str]
    source_splits: dict[str, int] = field(default_factory=dict)  # split name -> clips
    tables: dict[str, str] = field(default_factory=dict)  # Parquet file -> sha256 of its bytes
    # CRC-32 of each chunk's decoded array (C order, the cache dtype): a chunk file moved or
    # swapped passes its own crc32c but not this. Empty in caches built before it existed.
    chunk_crc32: list[int] = field(default_factory=list)

    @property
    def num_samples(self) -> int:
        return int(self.array["shape"][0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def write_manifest(directory: Path, manifest: Manifest) -> None:
    atomic_write_text(Path(directory) / MANIFEST_NAME, manifest.to_json())


def manifest_hash(manifest: Manifest) -> str:
    """The identity of a cache build: sha256 of the manifest without its `created` time, so
    re-ingesting the identical pickle the same way keeps every run and split of it valid."""
    content = {k: v for k, v in asdict(manifest).items() if k != "created"}
    if not content["chunk_crc32"]:  # a cache built before the field keeps the identity it had
        del content["chunk_crc32"]
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def legacy_manifest_hash(directory: Location) -> str:
    """sha256 of manifest.json's bytes: what skpipe 0.1 recorded in its runs."""
    return hashlib.sha256(read_bytes(join(directory, MANIFEST_NAME))).hexdigest()


def read_manifest(directory: Location) -> Manifest:
    """Read and check the manifest of the cache in `directory` (a path or an fsspec URL)."""
    path = join(directory, MANIFEST_NAME)
    if not exists(directory):
        raise SkpipeError(f"no cache at {directory} (run `skpipe ingest RAW.pkl` first)")
    if not exists(path):
        raise SkpipeError(f"{directory} is not a skpipe cache: {MANIFEST_NAME} is missing")
    try:
        data = json.loads(read_bytes(path))
    except (OSError, ValueError) as e:
        raise SkpipeError(f"{path}: unreadable manifest ({e})") from None
    if not isinstance(data, dict):
        raise SkpipeError(f"{path}: manifest is not a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SkpipeError(
            f"{path}: cache schema version {version}, this skpipe reads {SCHEMA_VERSION}; "
            "re-run `skpipe ingest --force`"
        )
    try:
        return Manifest(**data)
    except TypeError as e:
        raise SkpipeError(f"{path}: malformed manifest ({e})") from None
