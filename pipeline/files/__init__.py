"""Files: atomic writes and cache locations (paths or fsspec URLs). Every stage builds on these."""
