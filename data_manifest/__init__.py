"""The cache's manifest: what a cache was built from, how, and what it holds."""

from data_manifest.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Manifest,
    legacy_manifest_hash,
    manifest_hash,
    read_manifest,
    write_manifest,
)

__all__ = [
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "Manifest",
    "legacy_manifest_hash",
    "manifest_hash",
    "read_manifest",
    "write_manifest",
]
