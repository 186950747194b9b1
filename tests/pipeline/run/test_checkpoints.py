"""Checkpoints never run code: every format torch.save writes, and a bare pickle, are refused."""

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cli.main import main
from pipeline import SkpipeError
from pipeline.run.checkpoint import MAX_CHECKPOINT_BYTES, load_checkpoint
from pipeline.train.fit import TrainConfig, fit


class Payload:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _write(path, obj, fmt):
    if fmt == "zip":
        torch.save(obj, path)
    elif fmt == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(obj))


@pytest.fixture(scope="module")
def trained_run(synth_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(out), epochs=1, frames=8,
                           threads=1)).run_dir


@pytest.mark.parametrize("fmt", ["zip", "legacy", "bare"])
def test_malicious_checkpoint_is_refused_without_running(tmp_path, fmt, trained_run):
    marker = tmp_path / "pwned"
    good = torch.load(trained_run / "checkpoints" / "best.pt", weights_only=True)
    for obj in (Payload(marker), {**good, "extra": Payload(marker)}):
        path = tmp_path / f"evil-{fmt}.pt"
        _write(path, obj, fmt)
        with pytest.raises(SkpipeError, match="refused|unreadable"):
            load_checkpoint(path)
        r = CliRunner().invoke(main, ["evaluate", str(trained_run), "--checkpoint", str(path), "--force"])
        assert r.exit_code != 0 and "Traceback" not in r.output
        assert not marker.exists(), "the checkpoint ran code"


def test_replaced_last_pt_is_refused_on_resume(tmp_path, synth_cache):
    run = fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), epochs=1, frames=8,
                          threads=1)).run_dir
    marker = tmp_path / "pwned"
    good = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    torch.save({**good, "extra": Payload(marker)}, run / "checkpoints" / "last.pt")
    r = CliRunner().invoke(main, ["train", "lstm", "--cache", str(synth_cache), "--resume", str(run),
                                  "--epochs", "2"])
    assert r.exit_code != 0 and "refused" in r.output and "Traceback" not in r.output
    assert not marker.exists()


def test_our_checkpoints_load_with_weights_only(trained_run):
    ckpt = load_checkpoint(trained_run / "checkpoints" / "last.pt")
    assert isinstance(ckpt.rng, torch.Tensor) and ckpt.args.name == "lstm"
    with pytest.raises(SkpipeError, match="not a skpipe checkpoint"):
        torch.save({"weights": torch.zeros(1)}, trained_run / "other.pt")
        load_checkpoint(trained_run / "other.pt")


def _edited(run_dir, edit):
    """The run's last.pt, edited as an attacker would, written back over itself."""
    path = run_dir / "checkpoints" / "last.pt"
    data = torch.load(path, weights_only=True)
    edit(data)
    torch.save(data, path)
    return path


def test_a_huge_view_in_the_weights_is_refused_before_its_values_are_read(synth_cache, tmp_path):
    run_dir = fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), epochs=1, frames=8,
                              threads=1)).run_dir
    key = next(iter(torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]))
    path = _edited(run_dir, lambda d: d["model"].__setitem__(key, torch.zeros(1).expand(10**6, 10**6)))
    r = CliRunner().invoke(main, ["evaluate", str(run_dir), "--checkpoint", str(path)])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and "larger than its" in lines[0], r.output


def test_an_empty_training_state_cannot_be_resumed(synth_cache, tmp_path):
    run_dir = fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), epochs=1, frames=8,
                              threads=1)).run_dir
    _edited(run_dir, lambda d: d.__setitem__("state", {}))
    r = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--epochs", "2", "--threads", "1"])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1 and lines[-1].startswith("Error: ") and "no training state" in lines[-1], r.output


def _bombed(good: Path, out: Path, record: str, inflated: int) -> Path:
    """`good` (a torch zip) with the record whose name ends in `record` replaced by `inflated`
    bytes of zeros, deflated: half a MB more on disk, hundreds of MB declared."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith(record):
                dst.writestr(info, src.read(info))
                continue
            entry = zipfile.ZipInfo(info.filename)
            entry.compress_type = zipfile.ZIP_DEFLATED
            with dst.open(entry, "w", force_zip64=True) as f:
                chunk = bytes(1 << 24)
                for _ in range(inflated // len(chunk)):
                    f.write(chunk)
    return out


@pytest.mark.parametrize("record", ["data/0", "data.pkl"])
def test_zip_bombs_are_refused_from_the_directory(trained_run, tmp_path, record):
    """A storage (or the pickle) declared far larger than any model is refused before torch
    inflates anything: `predict RUN` reads the run's best.pt, `import` a foreign .pth."""
    best = trained_run / "checkpoints" / "best.pt"
    bomb = _bombed(best, tmp_path / "bomb.pt", record, MAX_CHECKPOINT_BYTES + (16 << 20))
    assert bomb.stat().st_size < best.stat().st_size + (1 << 20)
    with pytest.raises(SkpipeError, match="inflate to"):
        load_checkpoint(bomb)
    for args in (["import", str(bomb), "--out", str(tmp_path / "imp")],
                 ["evaluate", str(trained_run), "--checkpoint", str(bomb), "--force"]):
        r = CliRunner().invoke(main, args)
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert r.exit_code == 1 and len(lines) == 1 and "inflate to" in lines[0], r.output
    assert not (tmp_path / "imp").exists()
