"""manifest.json: the schema of a skpipe cache: what it was built from, how, and what it holds.

The contract between `ingest` and every later stage. This package depends on nothing of
`pipeline`: it turns manifest text into a checked `Manifest` and back, and hashes it. Reading and
writing the file in a cache directory is `pipeline.data.cache`'s job (`read_manifest`,
`write_manifest`), which turns a `ManifestError` into a one-line user error.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
ARRAY_NAME = "skeletons.zarr"
INDEX_NAME = "index.parquet"
SOURCE_SPLITS_NAME = "source_splits.parquet"
MAX_MANIFEST_BYTES = 64 << 20  # a manifest holds one CRC per chunk: far below this for any real cache

INDEX_COLUMNS = (
    "sample", "frame_dir", "label", "class_name", "group", "clip", "total_frames", "keypoint_frames",
    "valid_frames", "n_persons", "person", "mean_score", "nonfinite", "img_h", "img_w",
)


OLD_INDEX_NAMES = {"frames": "keypoint_frames"}  # caches before 0.1.0's word table: renamed on read


class ManifestError(ValueError):
    """A manifest that cannot be read as this schema (the message says why, in one line)."""


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
    # what each sample holds (models.layouts.Skeleton.to_dict): layout, dims, score, persons.
    # Empty for the seed's COCO-17 2D single-person cache, and in caches built before it existed.
    skeleton: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(self.array["shape"][0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> str:
        data = asdict(self)
        if not data["skeleton"]:  # the seed's cache: manifest.json as skpipe 0.1 wrote it
            del data["skeleton"]
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and type-check manifest text; a wrong version, field or type is a ManifestError."""
        try:
            data = json.loads(text)
        except RecursionError:
            raise ManifestError("unreadable manifest (nested too deeply)") from None
        except ValueError as e:
            raise ManifestError(f"unreadable manifest ({e})") from None
        if not isinstance(data, dict):
            raise ManifestError("manifest is not a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ManifestError(f"cache schema version {version}, this skpipe reads {SCHEMA_VERSION}; "
                                "re-run `skpipe ingest --force`")
        try:
            manifest = cls(**data)
        except TypeError as e:
            raise ManifestError(f"malformed manifest ({e})") from None
        manifest.check()
        return manifest

    def check(self) -> None:
        """Every field of the type the later stages use, before any of them allocates from it."""
        kinds = {"skpipe_version": str, "created": str, "source": dict, "preprocessing": dict,
                 "array": dict, "counts": dict, "class_names": list, "source_splits": dict,
                 "tables": dict, "chunk_crc32": list, "skeleton": dict}
        for f in fields(self):
            if f.name in kinds and not isinstance(getattr(self, f.name), kinds[f.name]):
                raise ManifestError(f"malformed manifest ({f.name} is not a {kinds[f.name].__name__})")
        if not all(isinstance(c, str) for c in self.class_names):
            raise ManifestError("malformed manifest (class_names must be strings)")
        shape, chunks = self.array.get("shape"), self.array.get("chunks")
        for name, value in (("shape", shape), ("chunks", chunks)):
            if (not isinstance(value, list) or not value
                    or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value)):
                raise ManifestError(f"malformed manifest (array {name} must be a list of counts)")
        if not isinstance(self.array.get("dtype"), str):
            raise ManifestError("malformed manifest (array dtype must be a string)")
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in self.chunk_crc32):
            raise ManifestError("malformed manifest (chunk_crc32 must be integers)")
        for key, kind in (("path", str), ("size", int), ("sha256", str)):
            if not isinstance(self.source.get(key), kind) or isinstance(self.source.get(key), bool):
                raise ManifestError(f"malformed manifest (source {key} must be a {kind.__name__})")
        classes = self.counts.get("classes")
        if classes is not None and classes != len(self.class_names):
            raise ManifestError(f"malformed manifest ({len(self.class_names)} class names for "
                                f"{classes} classes)")


def manifest_hash(manifest: Manifest) -> str:
    """The identity of a cache build: sha256 of the manifest without its `created` time, so
    re-ingesting the identical pickle the same way keeps every run and split of it valid."""
    content = {k: v for k, v in asdict(manifest).items() if k != "created"}
    for key in ("chunk_crc32", "skeleton"):  # a cache built before a field keeps its identity
        if not content[key]:
            del content[key]
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def legacy_manifest_hash(text: bytes) -> str:
    """sha256 of manifest.json's bytes: what skpipe 0.1 recorded in its runs."""
    return hashlib.sha256(text).hexdigest()
