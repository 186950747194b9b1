import json

import pytest

from pipeline import SkpipeError
from pipeline.data.cache import read_manifest


def test_refuses_missing_and_malformed(tmp_path):
    with pytest.raises(SkpipeError, match="no cache"):
        read_manifest(tmp_path / "none")
    with pytest.raises(SkpipeError, match="manifest.json is missing"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(SkpipeError, match="unreadable manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 1, "x": 1}))
    with pytest.raises(SkpipeError, match="malformed manifest"):
        read_manifest(tmp_path)
