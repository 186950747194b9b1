"""Writes that survive faults: the rename gap recovered, plain file modes, full or read-only
targets in one line, one trainer per run directory."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import SkpipeError
from pipeline.data.cache import ingest, open_cache
from pipeline.files.atomic import atomic_write_text, recover_replaced
from pipeline.run.checkpoint import Checkpoint, save_checkpoint
from pipeline.run.config import ModelArgs
from pipeline.run.runlog import run_lock


def test_a_replacement_that_died_between_its_renames_is_restored(tmp_path, tiny_pickle):
    ingest(tiny_pickle, tmp_path / "cache")
    before = open_cache(tmp_path / "cache").manifest_hash
    dead = 2**22 + 12345  # beyond pid_max on these machines: no such process
    os.replace(tmp_path / "cache", tmp_path / f".cache.tmp-{dead}-old")  # the first rename only
    assert open_cache(tmp_path / "cache").manifest_hash == before  # a reader puts it back
    os.replace(tmp_path / "cache", tmp_path / f".cache.tmp-{dead}-old")
    with pytest.raises(SkpipeError, match="already exists"):  # and so does the next ingest
        ingest(tiny_pickle, tmp_path / "cache")
    assert not recover_replaced(tmp_path / "cache")


def test_files_get_the_modes_a_plain_write_gives(tmp_path, tiny_pickle):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.json", "{}")
        ingest(tiny_pickle, tmp_path / "cache")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "cache" / "manifest.json").stat().st_mode) == 0o644


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")
    # /dev/full fails every write with ENOSPC; the temporary's bytes go there
    def full_write(self, data):  # noqa: ANN001, ANN202
        with open("/dev/full", "wb") as f:
            f.write(data)

    monkeypatch.setattr(Path, "write_bytes", full_write)
    with pytest.raises(SkpipeError, match="No space left on device.*unchanged"):
        atomic_write_text(target, "new" * 10000)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary left behind


def test_checkpoint_write_failure_leaves_no_temporary(tmp_path):
    (tmp_path / "ro").mkdir()
    with pytest.raises(SkpipeError, match="cannot write"):
        save_checkpoint(Checkpoint(ModelArgs("lstm", 2), {}), tmp_path / "ro" / "missing-dir" / "last.pt")
    assert list((tmp_path / "ro").iterdir()) == []


def test_one_trainer_per_run_directory(tmp_path):
    code = ("import sys; from pathlib import Path; from pipeline.run.runlog import run_lock\n"
            "from pipeline import SkpipeError\n"
            "try:\n    run_lock(Path(sys.argv[1])).__enter__()\n"
            "except SkpipeError as e:\n    print(e); sys.exit(3)\n")
    with run_lock(tmp_path):
        p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert p.returncode == 3 and "being trained by another process" in p.stdout
    assert not (tmp_path / ".lock").exists()  # a finished run holds no lock file
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 0  # the lock died with its holder (killed: no finally, the file stays)


def test_a_killed_writers_temporaries_are_swept_at_the_next_write(tmp_path):
    """A temporary whose writer no longer runs (killed: no `finally`) is removed by the next
    checkpoint write; one of a live process is left alone."""
    import os
    import subprocess

    from pipeline.run.checkpoint import Checkpoint, save_checkpoint
    from pipeline.run.config import ModelArgs

    dead = subprocess.Popen(["true"])  # a process that has ended: its pid is free
    dead.wait()
    stale = tmp_path / f".last.pt.tmp-{dead.pid}"
    live = tmp_path / f".last.pt.tmp-{os.getppid()}"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    save_checkpoint(Checkpoint(ModelArgs("lstm", 2), {}), tmp_path / "last.pt")
    assert not stale.exists() and live.exists() and (tmp_path / "last.pt").exists()
