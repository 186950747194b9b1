"""The cache's manifest: what a cache was built from, how, and what it holds. Depends on nothing
of `pipeline` (checked by import-linter)."""

from data_manifest.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Manifest,
    ManifestError,
    legacy_manifest_hash,
    manifest_hash,
)

__all__ = ["MANIFEST_NAME", "SCHEMA_VERSION", "Manifest", "ManifestError", "legacy_manifest_hash",
           "manifest_hash"]
