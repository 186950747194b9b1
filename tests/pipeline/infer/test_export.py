"""Export round trips (TorchScript, ONNX) on real clips of the run's cache, and refusals."""

import builtins
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.main import main
from pipeline import SkpipeError
from pipeline.infer.export import export_run, real_inputs
from pipeline.infer.inference import load_run_model
from pipeline.run.config import open_run
from pipeline.train.fit import TrainConfig, fit


@pytest.fixture(scope="module")
def runs(synth_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("export-runs")
    return {m: fit(TrainConfig(model=m, cache=str(synth_cache), out=str(out), epochs=1, frames=12,
                               threads=1, feats="b")).run_dir for m in ("lstm", "stgcn")}


@pytest.mark.parametrize("model", ["lstm", "stgcn"])
def test_torchscript_round_trip(runs, tmp_path, model):
    r = export_run(runs[model], "torchscript", tmp_path / "m.pt")
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    net, _ = load_run_model(open_run(runs[model]))
    for x, lengths in real_inputs(runs[model]):  # two batch sizes, two frame counts
        with torch.no_grad():
            np.testing.assert_allclose(loaded(x, lengths).numpy(), net(x, lengths).numpy(), atol=1e-4)
    assert r["max_abs_diff"] <= 1e-3 and len(r["checked_batches"]) == 2


@pytest.mark.parametrize("model", ["lstm", "stgcn"])
def test_onnx_round_trip(runs, tmp_path, model):
    ort = pytest.importorskip("onnxruntime")
    export_run(runs[model], "onnx", tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    net, _ = load_run_model(open_run(runs[model]))
    x, lengths = real_inputs(runs[model])[1]
    feed = {i.name: {"x": x.numpy(), "lengths": lengths.numpy()}[i.name] for i in session.get_inputs()}
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, feed)[0], net(x, lengths).numpy(), atol=1e-4)


def test_export_refusals(runs, tmp_path, monkeypatch):
    def refused(args, pattern):
        r = CliRunner().invoke(main, ["export", *map(str, args)])
        assert r.exit_code != 0 and "Traceback" not in r.output and pattern in r.output, r.output

    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o500)
    if os.geteuid() != 0:  # root writes anywhere
        refused([runs["stgcn"], "--out", tmp_path / "ro" / "m.pt"], "permission denied")
    (tmp_path / "m.pt").write_text("mine")
    refused([runs["stgcn"], "--out", tmp_path / "m.pt"], "already exists")
    assert (tmp_path / "m.pt").read_text() == "mine"
    refused([runs["stgcn"], "--checkpoint", tmp_path / "none.pt", "--out", tmp_path / "x.pt"],
            "no checkpoint")
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name.startswith("onnx"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(SkpipeError, match=r"skpipe\[onnx,video\]"):
        export_run(runs["stgcn"], "onnx", tmp_path / "y.onnx")
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.onnx").exists()


def test_the_default_export_says_how_it_opens(runs, tmp_path):
    """A .pt2 opens only with trusted=True: the export says so, and names the format to ship."""
    r = CliRunner().invoke(main, ["export", str(runs["stgcn"]), "--out", str(tmp_path / "m.pt2")])
    assert r.exit_code == 0, r.output
    assert "trusted=True" in r.output and "--format onnx" in r.output
    with pytest.raises(SkpipeError, match="trusted"):
        import skpipe

        skpipe.load(tmp_path / "m.pt2")


def test_the_suffix_of_out_chooses_the_format(runs, tmp_path):
    """`--out m.onnx` writes ONNX (it wrote a pt2 archive under that name); a --format that
    contradicts the suffix is one line, and nothing is written."""
    pytest.importorskip("onnxruntime")
    import skpipe

    r = CliRunner().invoke(main, ["export", str(runs["stgcn"]), "--out", str(tmp_path / "m.onnx")])
    assert r.exit_code == 0, r.output
    assert skpipe.load(tmp_path / "m.onnx").kind == "onnx" and "trusted=True" not in r.output
    r = CliRunner().invoke(main, ["export", str(runs["stgcn"]), "--format", "pt2", "--out",
                                  str(tmp_path / "n.onnx")])
    assert r.exit_code != 0 and "names onnx but --format is pt2" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "n.onnx").exists()
