"""Data: `ingest` (preprocess a pickle into the Zarr cache) and `build-splits` (protocols)."""
