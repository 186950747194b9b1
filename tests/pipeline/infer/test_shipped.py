"""Self-describing exports and the Python API: the README's snippets verbatim, the card in every
format, the API against `skpipe predict`, and what a file handed over may not do."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import skpipe
from cli.main import main
from pipeline import SkpipeError
from pipeline.infer import shipped
from pipeline.infer.export import export_run
from pipeline.run.options import TrainConfig
from pipeline.source.raw import read_raw
from pipeline.train.fit import fit
from tests.conftest import TEST_DATA, make_ann

README = Path(__file__).resolve().parents[3] / "README.md"
PICKLE = TEST_DATA / "mini_ucf101.pkl"
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def runs(synth_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("shipped-runs")
    # the ST-GCN trains in bf16: its inference must still be fp32 on every CPU
    made = {m: fit(TrainConfig(model=m, cache=str(synth_cache), out=str(out), epochs=1, frames=12, threads=1,
                               num_clips=2, precision=p)).run_dir
            for m, p in (("lstm", "fp32"), ("stgcn", "bf16"))}
    for run in made.values():
        export_run(run, "onnx")
        export_run(run, "pt2")
    return made


def _snippets() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Ship it"):text.index("Nothing handed to skpipe runs code")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_snippets_run_verbatim_on_a_real_export(runs):
    snippets = _snippets()
    assert len(snippets) == 2
    for model in ("lstm", "stgcn"):
        out = io.StringIO()
        scope = {"RUN": runs[model], "PICKLE": PICKLE}
        with contextlib.redirect_stdout(out):
            for code in snippets:
                exec(compile(code, "README.md", "exec"), scope)
        lines = out.getvalue().splitlines()
        assert len(lines) == 1 + 6 and lines[1].startswith("v_ApplyEyeMakeup")  # classes, then 6 clips
        assert scope["logits"].shape == (6, 2, 5)  # 6 clips, 2 temporal clips, 5 classes (one batch)
        api = skpipe.load(runs[model] / "export" / "model.onnx").probabilities(
            read_raw(PICKLE).annotations)
        np.testing.assert_allclose(scope["probs"], api, rtol=1e-5, atol=1e-6)  # the snippet's = the API's
        small = np.concatenate([x for x, _ in skpipe.batches(PICKLE, skpipe.load(runs[model]).card, 4)])
        np.testing.assert_array_equal(small, skpipe.preprocess(PICKLE, skpipe.load(runs[model]).card)[0])


def test_card_in_every_format_and_the_graph_inputs(runs):
    for model, inputs in (("lstm", ("x", "lengths")), ("stgcn", ("x",))):
        m = skpipe.load(runs[model] / "export" / "model.onnx")
        assert m.card.inputs == inputs and m.card.num_clips == 2 and m.card.frames == 12
        assert m.classes == json.loads((runs[model] / "config.json").read_text())["class_names"]
        session = ort.InferenceSession(str(runs[model] / "export" / "model.onnx"))
        meta = session.get_modelmeta().custom_metadata_map
        assert meta["layout"] == "coco17" and meta["frames"] == "12"
        assert json.loads(meta["classes"]) == m.classes
        p = skpipe.load(runs[model] / "export" / "model.pt2", trusted=True)
        assert p.classes == m.classes and p.card.format == "pt2"
    mode = (runs["stgcn"] / "export" / "model.onnx").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # the umask, not mkstemp's 0600


def test_api_agrees_with_skpipe_predict_on_every_engine(runs, any_cpu):
    """One predictor: the CLI's JSON and the API's return value have the same shape and the same
    probabilities on every engine, for whole clips and for windows along them, on every CPU
    (inference is fp32 unless asked, whatever the run trained in)."""
    run = runs["stgcn"]
    r = CliRunner().invoke(main, ["predict", str(run), str(PICKLE), "--json", "--top", "5",
                                  "--window", "8", "--stride", "4"])
    got = [json.loads(line) for line in r.output.splitlines()]
    want = {d["frame_dir"]: d for d in got}
    assert got and all(len(d["windows"]) > 1 for d in got)
    for model in (skpipe.load(run), skpipe.load(run / "checkpoints" / "best.pt"),
                  skpipe.load(run / "export" / "model.onnx"),
                  skpipe.load(run / "export" / "model.pt2", trusted=True)):
        for clip in model.predict(PICKLE, top=5, window=8, stride=4):
            cli = want[clip["frame_dir"]]
            assert set(clip) == set(cli) - {"label", "label_class"}
            pairs = [(clip["top"], cli["top"])] + [
                (a["top"], b["top"]) for a, b in zip(clip["windows"], cli["windows"], strict=True)]
            for ours, theirs in pairs:
                assert [t["class"] for t in ours] == [t["class"] for t in theirs]
                assert [t["probability"] for t in ours] == pytest.approx(
                    [t["probability"] for t in theirs], abs=1e-5)
    assert skpipe.load(run).precision == "fp32"
    if any_cpu == "native-bf16":  # asked for, where native
        assert skpipe.load(run, precision="bf16").precision == "bf16"
    ann = make_ann(t=30)
    one = skpipe.load(run).predict(ann)
    assert one == skpipe.load(run).predict([ann]) and len(one[0]["top"]) == 5


def test_bf16_inference_where_emulated_is_one_line(runs, monkeypatch):
    from pipeline.run import runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2"}))
    r = CliRunner().invoke(main, ["predict", str(runs["stgcn"]), str(PICKLE), "--precision", "bf16"])
    assert r.exit_code == 1 and "no native bf16" in r.output and "Traceback" not in r.output


def test_what_a_file_handed_over_may_not_do(runs, tmp_path):
    run = runs["stgcn"]
    with pytest.raises(SkpipeError, match="can run code"):
        skpipe.load(run / "export" / "model.pt2")  # not trusted: torch.export's loader unpickles
    with pytest.raises(SkpipeError, match="TorchScript|expected a run"):
        skpipe.load(tmp_path / "model.ts")
    import onnx

    proto = onnx.load(str(run / "export" / "model.onnx"))
    bare = onnx.ModelProto()
    bare.CopyFrom(proto)
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(SkpipeError, match="without a skpipe card"):
        skpipe.load(tmp_path / "bare.onnx")
    ext = onnx.ModelProto()
    ext.CopyFrom(proto)
    t = ext.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value="/etc/passwd")
    onnx.save(ext, str(tmp_path / "ext.onnx"))
    with pytest.raises(SkpipeError, match="external files"):
        skpipe.load(tmp_path / "ext.onnx")
    for bad in ("{", json.dumps({"model": "stgcn"}), "[" * 100_000):
        with pytest.raises(SkpipeError, match="card"):
            shipped.ModelCard.from_json(bad)
    m = skpipe.load(run / "export" / "model.onnx")
    other = make_ann()
    other["keypoint"] = np.zeros((1, 10, 25, 2), np.float16)
    other["keypoint_score"] = np.zeros((1, 10, 25), np.float16)
    with pytest.raises(SkpipeError, match="25 joints"):
        m.predict(other)
    with pytest.raises(SkpipeError, match="img_shape"):
        m.predict((other["keypoint"], other["keypoint_score"]))


def test_export_on_a_full_disk_is_one_line_and_leaves_nothing(runs, tmp_path, monkeypatch):
    import errno

    def full(self: Path, data: bytes) -> int:  # the temporary's write finds the disk full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full)
    out = tmp_path / "m.onnx"
    r = CliRunner().invoke(main, ["export", str(runs["stgcn"]), "--format", "onnx", "--out", str(out)])
    assert r.exit_code == 1 and "No space left on device" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_a_nan_export_is_refused(runs, tmp_path, monkeypatch):
    import pipeline.infer.export as export

    class Nan:
        def logits(self, x, lengths):
            return np.full((len(x), 5), np.nan, np.float32)

    monkeypatch.setattr(export, "from_bytes", lambda *a, **k: Nan())
    with pytest.raises(SkpipeError, match="differs from PyTorch by nan"):
        export_run(runs["stgcn"], "onnx", tmp_path / "n.onnx")
    assert not (tmp_path / "n.onnx").exists()


def test_a_card_that_lies_about_the_classes_is_caught(runs, tmp_path):
    import onnx

    proto = onnx.load(str(runs["stgcn"] / "export" / "model.onnx"))
    props = {p.key: p.value for p in proto.metadata_props}
    card = json.loads(props["skpipe"])
    card["class_names"] = card["class_names"][:3]  # the graph still returns 5 logits
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {**props, "skpipe": json.dumps(card)})
    onnx.save(proto, str(tmp_path / "lie.onnx"))
    with pytest.raises(SkpipeError, match="its card does not describe it"):
        skpipe.load(tmp_path / "lie.onnx").predict(PICKLE)


def test_an_onnx_graph_that_would_allocate_gigabytes_is_refused_before_it_runs(runs, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    proto = onnx.load(str(runs["stgcn"] / "export" / "model.onnx"))
    # a 10^5 x 10^5 float tensor (40 GB) from a 16-byte constant, added to the logits
    shape = helper.make_tensor("bomb_shape", TensorProto.INT64, [2], [100_000, 100_000])
    proto.graph.initializer.append(shape)
    out = proto.graph.output[0].name
    proto.graph.node[-1].output[0] = "pre_bomb"
    proto.graph.node.extend([
        helper.make_node("ConstantOfShape", ["bomb_shape"], ["bomb"]),
        helper.make_node("ReduceMean", ["bomb"], ["bomb_sum"], keepdims=0),
        helper.make_node("Add", ["pre_bomb", "bomb_sum"], [out]),
    ])
    onnx.save(proto, str(tmp_path / "bomb.onnx"))
    with pytest.raises(SkpipeError, match="would hold 10,000,000,000 elements"):
        skpipe.load(tmp_path / "bomb.onnx")
    m = skpipe.load(runs["stgcn"] / "export" / "model.onnx")  # skpipe's own graphs pass
    x, lengths = skpipe.preprocess(PICKLE, m.card, clips=20)  # 120 rows: run 64 at a time
    assert m.logits(x, lengths).shape == (120, 5)


def test_onnx_graphs_unlike_skpipes_are_refused_before_they_run(runs, tmp_path):
    """Issue 30's held-out attacks, rebuilt: control flow (a Loop that never ends, an If whose
    branch names an external file), a Range sized by `lengths`, sparse tensors, an op skpipe never
    exports, padded metadata."""
    import onnx
    from onnx import TensorProto, helper

    base = runs["lstm"] / "export" / "model.onnx"

    def attack(name: str, edit, pattern: str) -> None:  # noqa: ANN001
        proto = onnx.load(str(base))
        out = proto.graph.output[0].name
        proto.graph.node[-1].output[0] = "pre"
        edit(proto, out)
        onnx.save(proto, str(tmp_path / f"{name}.onnx"))
        with pytest.raises(SkpipeError, match=pattern):
            skpipe.load(tmp_path / f"{name}.onnx")

    def loop(p, out):  # noqa: ANN001
        body = helper.make_graph([helper.make_node("Identity", ["cond"], ["cond_out"])], "body",
                                 [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                                  helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                                 [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])])
        p.graph.node.extend([helper.make_node("Loop", ["", "true"], [], body=body),
                             helper.make_node("Identity", ["pre"], [out])])
        p.graph.initializer.append(helper.make_tensor("true", TensorProto.BOOL, [], [True]))

    def external_branch(p, out):  # noqa: ANN001
        t = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value="/etc/passwd")
        branch = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "b", [],
                                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [t])
        p.graph.node.extend([helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch),
                             helper.make_node("Add", ["pre", "y"], [out])])
        p.graph.initializer.append(helper.make_tensor("c", TensorProto.BOOL, [], [True]))

    def range_on_lengths(p, out):  # noqa: ANN001
        p.graph.initializer.extend([helper.make_tensor("zero", TensorProto.INT64, [], [0]),
                                    helper.make_tensor("one", TensorProto.INT64, [], [1])])
        p.graph.node.extend([helper.make_node("ReduceMean", ["lengths"], ["n"], keepdims=0),
                             helper.make_node("Range", ["zero", "n", "one"], ["r"]),
                             helper.make_node("Identity", ["pre"], [out])])

    def sparse(p, out):  # noqa: ANN001
        values = helper.make_tensor("sv", TensorProto.FLOAT, [1], [1.0])
        idx = helper.make_tensor("si", TensorProto.INT64, [1], [0])
        p.graph.sparse_initializer.append(helper.make_sparse_tensor(values, idx, [10]))
        p.graph.node.append(helper.make_node("Identity", ["pre"], [out]))

    def sqrt(p, out):  # noqa: ANN001
        p.graph.node.append(helper.make_node("Sqrt", ["pre"], [out]))

    def padded(p, out):  # noqa: ANN001
        p.graph.node.append(helper.make_node("Identity", ["pre"], [out]))
        p.metadata_props.add(key="pad", value="x" * (9 << 20))

    attack("loop", loop, "control flow")
    attack("if", external_branch, "control flow|external")
    attack("range", range_on_lengths, "sized by the input's values")
    attack("sparse", sparse, "sparse")
    attack("sqrt", sqrt, "op 'Sqrt'")
    attack("padded", padded, "metadata")
    assert skpipe.load(base).classes  # skpipe's own LSTM graph (Range, Expand, ConstantOfShape) loads


def test_readme_pandas_snippet_runs_on_a_cache_that_is_not_ucf101(tmp_path, monkeypatch):
    """The snippet once hard-coded split "1" and a UCF101 clip: on an NTU-style cache it ended in
    IndexError."""
    from pipeline.data.cache import ingest, open_cache
    from pipeline.data.splits import write_splits
    from tests.conftest import make_ann, write_pickle

    anns = [make_ann(f"S001C001P{p:03d}R001A{a:03d}", a - 1, t=20, seed=p * 10 + a)
            for p in range(1, 5) for a in (1, 2)]
    names = [a["frame_dir"] for a in anns]
    raw = write_pickle(tmp_path / "ntu.pkl", {"split": {"xsub_train": names[:6], "xsub_val": names[6:]},
                                                "annotations": anns})
    ingest(raw, tmp_path / "cache")
    write_splits(open_cache(tmp_path / "cache"))
    text = README.read_text()
    section = text[text.index("### Inspecting the cache with pandas"):text.index("## Your own videos")]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(compile(code, "README.md", "exec"), scope)
    assert "xsub" in out.getvalue() and scope["clip"].shape == (300, 17, 3)  # type: ignore[attr-defined]
    assert scope["row"]["frame_dir"] == names[0]  # type: ignore[index]


def test_a_script_beside_a_clone_named_skpipe_imports_the_package(tmp_path):
    """With the README's install, a script run from the folder above a clone named `skpipe/`
    gets the package, not the clone folder as an empty namespace package."""
    import subprocess
    import sys

    (tmp_path / "skpipe").mkdir()  # the clone, as the README's layout names it
    (tmp_path / "skpipe" / "README.md").write_text("a clone\n")
    r = subprocess.run([sys.executable, "-c", "import skpipe; print(skpipe.load.__name__)"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "load", r.stderr[-300:]


def test_ci_runs_exactly_the_readme_test_command():
    root = README.parent
    ci = (root / ".ci" / "run").read_text().strip().splitlines()[-1].replace(" -q ", " ")
    assert ci in README.read_text()
