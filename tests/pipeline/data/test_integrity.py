"""Damaged caches are caught, never used: checksummed chunks and tables, `info --verify`."""

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from cli.main import main
from pipeline import SkpipeError
from pipeline.data.cache import ingest, open_cache, verify_cache
from pipeline.data.splits import read_splits, write_splits
from pipeline.inputs.dataset import LoaderConfig, SkeletonDataset
from pipeline.source.synth import SynthConfig, write_synth


@pytest.fixture
def cache(tmp_path_factory, tmp_path):
    base = tmp_path_factory.getbasetemp() / "integrity-src"
    if not base.exists():
        base.mkdir()
        write_synth(base / "raw.pkl", SynthConfig(classes=3, per_class=12, seed=2))
        ingest(base / "raw.pkl", base / "cache", force=True)
        from pipeline.data.cache import IngestConfig

        shutil.rmtree(base / "cache")
        ingest(base / "raw.pkl", base / "cache", IngestConfig(chunk=8))
        write_splits(open_cache(base / "cache"))
    shutil.copytree(base / "cache", tmp_path / "cache")
    return tmp_path / "cache"


def chunk_file(cache, c):
    return cache / "skeletons.zarr" / "c" / str(c) / "0" / "0" / "0"


def read_all(cache):
    ds = SkeletonDataset(open_cache(cache), LoaderConfig(subset="train", frames=8, mode="stream"))
    return sum(len(b[1]) for b in ds)


def test_a_clean_cache_verifies(cache):
    assert verify_cache(open_cache(cache)) == []
    assert read_all(cache) > 0


@pytest.mark.parametrize("damage, pattern", [
    (lambda f: f.unlink(), "is missing or zeroed"),
    (lambda f: f.write_bytes(f.read_bytes()[:-9] + bytes([f.read_bytes()[-9] ^ 0xFF]) + f.read_bytes()[-8:]),
     "is damaged"),
    (lambda f: f.write_bytes(f.read_bytes()[:20]), "is damaged"),
])
def test_damaged_chunks_are_named_with_their_samples(cache, damage, pattern):
    damage(chunk_file(cache, 1))
    with pytest.raises(SkpipeError, match=rf"chunk 1 of skeletons.zarr \(samples 8-15\) {pattern}"):
        read_all(cache)
    problems = verify_cache(open_cache(cache))
    assert len(problems) == 1 and "chunk 1" in problems[0]
    r = CliRunner().invoke(main, ["info", "--cache", str(cache), "--verify"])
    assert r.exit_code != 0 and "damaged:" in r.output and "Traceback" not in r.output


def _device(f):
    f.unlink()
    f.symlink_to("/dev/zero")


def _fifo(f):
    import os

    f.unlink()
    os.mkfifo(f)


def _huge(f):
    with f.open("r+b") as h:
        h.truncate(1 << 30)  # sparse: a gigabyte that takes no disk


@pytest.mark.parametrize("damage", [_device, _fifo, _huge])
def test_a_chunk_that_is_no_chunk_file_is_refused_before_it_is_read(cache, damage):
    """A link to /dev/zero, a FIFO or an oversized file would be read without bound (or forever)."""
    damage(chunk_file(cache, 1))
    with pytest.raises(SkpipeError, match=r"chunk 1 of skeletons.zarr \(samples 8-15\) is not a chunk file"):
        read_all(cache)
    r = CliRunner().invoke(main, ["info", "--cache", str(cache), "--verify"])
    assert r.exit_code != 0 and "is not a chunk file" in r.output and "Traceback" not in r.output


def test_edited_tables_are_refused(cache):
    idx = pd.read_parquet(cache / "index.parquet")
    idx["label"] = idx["label"].sample(frac=1, random_state=0).to_numpy()
    idx.to_parquet(cache / "index.parquet", index=False)
    with pytest.raises(SkpipeError, match="index.parquet does not match its checksum"):
        open_cache(cache).index  # noqa: B018


def test_edited_or_garbage_splits_are_refused(cache):
    sp = pd.read_parquet(cache / "splits.parquet")
    sp.loc[sp["subset"] == "test", "subset"] = "train"
    sp.to_parquet(cache / "splits.parquet", index=False)
    with pytest.raises(SkpipeError, match="splits.parquet does not match its checksum"):
        read_splits(open_cache(cache))
    meta = json.loads((cache / "splits.json").read_text())
    (cache / "splits.json").write_text(json.dumps({**meta, "table_sha256": ""}))
    (cache / "splits.parquet").write_bytes(b"garbage")
    with pytest.raises(SkpipeError, match="splits.parquet is unreadable"):
        read_splits(open_cache(cache))


def test_reingesting_the_same_pickle_keeps_runs_valid(tmp_path):
    write_synth(tmp_path / "raw.pkl", SynthConfig(classes=2, per_class=4))
    ingest(tmp_path / "raw.pkl", tmp_path / "c")
    first = open_cache(tmp_path / "c").manifest_hash
    ingest(tmp_path / "raw.pkl", tmp_path / "c", force=True)
    assert open_cache(tmp_path / "c").manifest_hash == first


def test_swapped_chunks_are_caught(cache):
    """Each chunk file passes its own crc32c; the manifest's CRC-32 of what was written at each
    position does not."""
    a, b = chunk_file(cache, 0), chunk_file(cache, 2)
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    problems = verify_cache(open_cache(cache))
    assert len(problems) == 2 and all("moved, swapped or edited" in p for p in problems)
    assert "chunk 0 " in problems[0] and "chunk 2 " in problems[1]
    with pytest.raises(SkpipeError, match="does not hold what was written there"):
        read_all(cache)


def test_a_cache_without_chunk_checksums_still_reads(cache):
    """Caches built before the per-chunk CRC-32 keep working (and keep their identity)."""
    from data_manifest import manifest_hash
    from pipeline.data.cache import read_manifest, write_manifest

    m = read_manifest(cache)
    assert len(m.chunk_crc32) == 5  # 36 clips in chunks of 8
    from dataclasses import replace

    write_manifest(cache, replace(m, chunk_crc32=[]))
    for name in ("splits.json", "splits.parquet"):  # built for the edited manifest's other identity
        (cache / name).unlink()
    assert verify_cache(open_cache(cache)) == []
    assert manifest_hash(read_manifest(cache)) != manifest_hash(m)
    # its identity is the one the skpipe before the field computed: runs and splits stay valid
    import hashlib

    old = json.loads((cache / "manifest.json").read_text())
    del old["chunk_crc32"], old["created"]
    recorded = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()
    assert open_cache(cache).built_as(recorded)


def _edit_manifest(cache, **changes):
    data = json.loads((cache / "manifest.json").read_text())
    data.update(changes)
    (cache / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize("changes, said", [
    ({"source": {}}, "source path must be a str"),
    ({"class_names": ["Class0", "Class1"]}, "2 class names for 3 classes"),
])
def test_an_edited_manifest_is_one_line_in_info(cache, changes, said):
    _edit_manifest(cache, **changes)
    r = CliRunner().invoke(main, ["info", "--cache", str(cache)])
    assert r.exit_code == 1 and said in r.output and "Traceback" not in r.output


def test_class_names_that_disagree_with_the_index_fail_verify(cache):
    data = json.loads((cache / "manifest.json").read_text())
    _edit_manifest(cache, class_names=[*data["class_names"][1:], data["class_names"][0]])  # shifted
    r = CliRunner().invoke(main, ["info", "--cache", str(cache), "--verify"])
    assert r.exit_code == 1 and "class names differ from index.parquet" in r.output
    assert "verified" not in r.output


@pytest.mark.parametrize("damage", ["deep", "device"])
def test_damaged_protocols_fail_verify(cache, damage):
    target = cache / "splits.json"
    if damage == "deep":
        target.write_text("[" * 100_000 + "]" * 100_000)
    else:
        target.unlink()
        target.symlink_to("/dev/zero")
    r = CliRunner().invoke(main, ["info", "--cache", str(cache), "--verify"])
    assert r.exit_code == 1 and "damaged:" in r.output and "splits" in r.output
    assert "verified" not in r.output and "Traceback" not in r.output


def test_info_escapes_what_the_files_say(cache):
    _edit_manifest(cache, source={"path": "/tmp/\x1b[2Jraw.pkl", "size": 1, "sha256": "ab"})
    r = CliRunner().invoke(main, ["info", "--cache", str(cache)])
    assert r.exit_code == 0 and "\x1b" not in r.output
