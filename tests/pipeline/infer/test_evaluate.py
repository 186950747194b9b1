"""Evaluation: figures agree with scikit-learn, multi-clip averaging, reports, compare, predict."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm

import pipeline.infer.evaluate as ev
from pipeline import SkpipeError
from pipeline.infer.card import card_of
from pipeline.infer.compare import compare_runs, to_markdown
from pipeline.infer.evaluate import compute_metrics, confusion_png, evaluate_run, worst_pairs
from pipeline.infer.feed import prepare
from pipeline.infer.predict import predict_file
from pipeline.infer.report import Report, read_report, to_json
from pipeline.infer.shipped import ShippedModel
from pipeline.source.raw import read_raw
from pipeline.train.fit import TrainConfig, fit
from tests.conftest import TEST_DATA


def test_metrics_agree_with_sklearn_including_absent_classes():
    rng = np.random.default_rng(0)
    names = [f"c{i}" for i in range(7)]  # classes 5 and 6 never occur in y_true
    y = rng.integers(0, 5, 60)
    probs = rng.random((60, 7))
    probs[np.arange(60), y] += rng.random(60) * 1.5  # mostly right
    probs /= probs.sum(1, keepdims=True)
    m = compute_metrics(y, probs, names)
    pred = probs.argmax(1)
    assert m["accuracy"] == skm.accuracy_score(y, pred)
    assert m["top5_accuracy"] == skm.top_k_accuracy_score(y, probs, k=5, labels=range(7))
    assert m["mean_class_accuracy"] == skm.balanced_accuracy_score(y, pred)
    for kind in ("macro", "weighted"):
        assert m[kind]["f1"] == skm.f1_score(y, pred, average=kind, zero_division=0)
        assert m[kind]["precision"] == skm.precision_score(y, pred, average=kind, zero_division=0)
    pc = m["per_class"]
    assert list(pc["support"]) == [int((y == c).sum()) for c in range(7)]
    np.testing.assert_array_equal(pc["f1"], skm.f1_score(y, pred, labels=range(7), average=None,
                                                         zero_division=0))
    assert (m["confusion"] == skm.confusion_matrix(y, pred, labels=range(7))).all()


def test_hand_made_predictions():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0], [0.2, 0.8, 0], [0.1, 0.9, 0], [0.1, 0.9, 0]])
    m = compute_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == 0.75 and m["mean_class_accuracy"] == 0.75
    assert m["per_class"]["recall"].tolist() == [0.5, 1.0, 0.0]
    assert worst_pairs(m["confusion"]) == [(0, 1, 0.5)]


class Constant(torch.nn.Module):
    """Logits that depend on which frames a clip was given: the first frame's x coordinate."""

    def forward(self, x, lengths=None):
        first = x[:, 0, 0, 0]  # (B,)
        return torch.stack([first * 3, torch.zeros_like(first), -first * 3], dim=1)


def test_multi_clip_averaging(synth_cache, tmp_path, monkeypatch):
    run_dir = fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), epochs=1,
                              frames=8, batch_size=32, threads=1)).run_dir
    run = ev.open_run(run_dir)
    cache = run.open_cache()
    model = Constant()
    card = replace(card_of(run.config, "run", ("x", "lengths")), class_names=("a", "b", "c"))  # Constant's
    shipped = ShippedModel(card, model, "torch")
    one = [ev.predict_subset(shipped, cache, run, "val", clips=1)[0]]
    p0 = one[0]
    p2, y2, s2 = ev.predict_subset(shipped, cache, run, "val", clips=2)
    # clip 0 of 2 and clip 1 of 2, each in a pass of its own, averaged by hand
    from pipeline.inputs.batch import take_frames
    from pipeline.inputs.dataset import LoaderConfig, SkeletonDataset
    from pipeline.inputs.transforms import uniform_indices

    ds = SkeletonDataset(cache, LoaderConfig(subset="val", frames=8, train=False, mode="memory"))
    rows = ds._hold()  # (n, 300, V, C), in sample order, as predict_subset returns them
    assert (s2 == ds.samples).all()
    x = torch.from_numpy(rows.astype(np.float32))
    by_hand = [torch.softmax(model(take_frames(x, uniform_indices(ds.valid, 8, None, k, 2))), 1).numpy()
               for k in range(2)]
    np.testing.assert_allclose(p2, (by_hand[0] + by_hand[1]) / 2, rtol=1e-6)
    assert not np.allclose(p2, p0)
    np.testing.assert_allclose(p2.sum(1), 1, rtol=1e-6)


def test_report_files_and_refusals(synth_cache, tmp_path, tiny_pickle):
    from pipeline.data.cache import ingest

    ingest(tiny_pickle, tmp_path / "other")
    run_dir = fit(TrainConfig(model="stgcn", cache=str(synth_cache), out=str(tmp_path), epochs=1,
                              frames=8, batch_size=32, threads=1)).run_dir
    r = evaluate_run(run_dir, "test", clips=2)
    out = run_dir / "eval" / "test-clips2"  # not the run's own --clips: kept beside eval/test
    rep = json.loads((out / "report.json").read_text())
    assert rep["num_clips"] == 2 and rep == json.loads(to_json(r.report)) and rep["samples"] > 0
    assert read_report(out / "report.json", Report) == r.report  # the contract round-trips
    for key in ("accuracy", "top5_accuracy", "mean_class_accuracy", "macro", "weighted", "parameters",
                "checkpoint"):
        assert key in rep
    pc = pd.read_csv(out / "per_class.csv")
    assert list(pc.columns) == ["class", "support", "precision", "recall", "f1", "accuracy"]
    assert pc["support"].sum() == rep["samples"]
    conf = pd.read_csv(out / "confusion.csv", index_col=0)
    assert conf.shape == (5, 5) and conf.to_numpy().sum() == rep["samples"]
    png = (out / "confusion.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SkpipeError, match="already exists"):
        evaluate_run(run_dir, "test", clips=2)
    with pytest.raises(SkpipeError, match="unknown subset"):
        evaluate_run(run_dir, "dev")
    (run_dir / "checkpoints" / "best.pt").unlink()
    with pytest.raises(SkpipeError, match="no checkpoint"):
        evaluate_run(run_dir, "val")
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["manifest_hash"] = "f" * 64
    (run_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SkpipeError, match="changed since"):
        evaluate_run(run_dir, "val", checkpoint="last")
    with pytest.raises(SkpipeError, match="is another cache than the one .* was trained on"):
        evaluate_run(run_dir, "val", checkpoint="last", cache_dir=tmp_path / "other")


def test_confusion_png_at_101_classes():
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    noise = (rng.random((101, 101)) < 0.03) * rng.integers(1, 4, (101, 101))
    conf = np.diag(rng.integers(5, 30, 101)) + noise
    names = [f"SomeLongClassName{i:03d}" for i in range(101)]
    img = Image.open(io.BytesIO(confusion_png(conf, names, "test")))
    assert img.size[0] > 2000 and img.size[1] > 2000  # room for 101 legible names


@pytest.mark.parametrize(("n", "chars"), [(5, 40), (30, 25)])
def test_confusion_png_cuts_nothing_at_its_edges(n, chars):
    """Long names once pushed the "predicted class" label off the bottom: every edge is white."""
    import io

    from PIL import Image

    conf = np.diag(np.full(n, 9)) + 1
    names = [f"{'Long' * chars}"[: chars - 2] + f"{i:02d}" for i in range(n)]
    img = np.asarray(Image.open(io.BytesIO(confusion_png(conf, names, "test"))).convert("L"))  # (H, W)
    for edge in (img[:3], img[-3:], img[:, :3], img[:, -3:]):
        assert edge.min() > 240


def test_curves_have_whole_epochs_on_a_short_run():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from pipeline.run.metrics import EpochRow
    from pipeline.run.runlog import curves_figure

    rows = [EpochRow(epoch=e, train_loss=1.0 / e, train_acc=0.1 * e, val_loss=1.0 / e, val_acc=0.1 * e,
                     lr=0.1, seconds=1.0, samples_per_s=10.0) for e in (1, 2, 3)]
    fig = curves_figure(rows, "run")
    FigureCanvasAgg(fig).draw()
    for ax in fig.axes:
        assert all(float(t).is_integer() for t in ax.get_xticks()), ax.get_xticks()


def test_compare_flags_mismatches(synth_cache, tmp_path):
    runs = []
    for model, split in (("lstm", "1"), ("stgcn", "1"), ("lstm", "2")):
        d = fit(TrainConfig(model=model, cache=str(synth_cache), out=str(tmp_path), epochs=1,
                            frames=8, split=split, threads=1)).run_dir
        evaluate_run(d, "test")
        runs.append(d)
    df, warnings = compare_runs(runs[:2])
    assert list(df["model"]) == ["lstm", "stgcn"] and not warnings
    assert df["parameters"].tolist()[1] > 0 and "| stgcn |" in to_markdown(df, warnings)
    _, warnings = compare_runs(runs)
    assert any("different splits" in w for w in warnings)
    df, warnings = compare_runs(runs, split="2")
    assert len(df) == 1 and any("left out, other protocols" in w and "(1)" in w for w in warnings)
    with pytest.raises(SkpipeError, match="no run on protocol 'xsub'"):
        compare_runs(runs, split="xsub")
    with pytest.raises(SkpipeError, match="no run has a val evaluation"):
        compare_runs(runs, "val")
    # an unevaluated run beside evaluated ones is named, the others compared (the README's
    # `compare runs/*` after evaluating some)
    fresh = fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), epochs=1, frames=8,
                            threads=1)).run_dir
    df, warnings = compare_runs([*runs[:2], fresh])
    assert len(df) == 2 and any("no test evaluation yet" in w and fresh.name in w for w in warnings)
    # every warning compare promises: other clip counts, other caches, each naming its runs
    import shutil
    from dataclasses import replace

    from pipeline.run.config import open_run, write_config

    evaluate_run(runs[1], "test", clips=2)  # beside eval/test: compare still reads the run's own
    assert compare_runs(runs[:2])[1] == []
    config = open_run(runs[1]).config
    write_config(runs[1], replace(config, train=replace(config.train, num_clips=2)))  # its own: 2
    evaluate_run(runs[1], "test", force=True)
    _, warnings = compare_runs(runs[:2])
    assert any("different --clips" in w and f"{runs[1].name}: 2" in w for w in warnings)

    other = shutil.copytree(runs[0], tmp_path / "other-cache-run")
    write_config(other, replace(open_run(other).config, manifest_hash="0" * 64))
    _, warnings = compare_runs([runs[0], other])
    assert any("different caches" in w and "other-cache-run" in w for w in warnings)


def test_predict_uses_ingest_preprocessing(synth_cache, tmp_path):
    run_dir = fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), epochs=1,
                              frames=300, threads=1)).run_dir
    sample = TEST_DATA / "example_UCF101_skeleton.pkl"
    res = predict_file(run_dir, sample, top=3)
    assert len(res) == 1 and res[0]["frame_dir"] == "v_ApplyEyeMakeup_g01_c01"
    assert len(res[0]["top"]) == 3 and res[0]["top"][0]["probability"] >= res[0]["top"][1]["probability"]
    # the same numbers as a cache built by ingest
    from pipeline.data.cache import ingest, open_cache

    ingest(sample, tmp_path / "c")
    x, valid = prepare(read_raw(sample).annotations, 300, "float16")
    np.testing.assert_array_equal(x[0], open_cache(tmp_path / "c").open_array()[0].astype(np.float32))
    assert valid[0] == 163


def test_predict_sends_batches_not_the_whole_file(synth_cache, tmp_path, monkeypatch):
    from pipeline.infer import inference
    from pipeline.infer import predict as pr
    from tests.conftest import make_ann, write_pickle

    run_dir = fit(TrainConfig(model="stgcn", cache=str(synth_cache), out=str(tmp_path), epochs=1,
                              frames=8, threads=1)).run_dir
    raw = write_pickle(tmp_path / "many.pkl", [make_ann(f"c{i:02d}", seed=i, t=20) for i in range(10)])
    seen = []
    real = inference.load_run_model

    def spy(run, checkpoint="best"):
        model, path = real(run, checkpoint)
        model.register_forward_hook(lambda m, args, out: seen.append(len(args[0])))
        return model, path

    monkeypatch.setattr(inference, "load_run_model", spy)
    res = pr.predict_file(run_dir, raw, top=2, clips=2, batch_size=4)
    assert len(res) == 10 and seen == [8, 8, 4]  # 4 clips x 2 temporal clips, folded: one pass each
    whole = pr.predict_file(run_dir, raw, top=2, clips=2, batch_size=64)
    for a, b in zip(res, whole, strict=True):
        assert a["top"][0]["probability"] == pytest.approx(b["top"][0]["probability"], rel=1e-5)


def test_window_ranges():
    from pipeline.infer.feed import window_starts

    assert window_starts(100, 32, 16) == [0, 16, 32, 48, 64, 68]  # the last window ends at frame 99
    assert window_starts(20, 32, 8) == [0]
    assert window_starts(64, 32, 32) == [0, 32]


def test_predict_windows_cover_long_clips(synth_cache, tmp_path):
    from click.testing import CliRunner

    from cli.main import main
    from pipeline.infer.predict import predict_file
    from tests.conftest import make_ann, write_pickle

    run_dir = fit(TrainConfig(model="stgcn", cache=str(synth_cache), out=str(tmp_path), epochs=1,
                              frames=16, threads=1)).run_dir
    raw = write_pickle(tmp_path / "long.pkl", [make_ann("long", t=420, seed=1), make_ann("short", t=10)])
    res = predict_file(run_dir, raw, top=2, window=16, stride=8)
    long_windows = res[0]["windows"]
    assert long_windows[0]["start"] == 0 and long_windows[-1]["end"] == 419  # past the cache's 300
    assert all(w["end"] - w["start"] == 15 for w in long_windows)
    assert [(w["start"], w["end"]) for w in res[1]["windows"]] == [(0, 9)]
    r = CliRunner().invoke(main, ["predict", str(run_dir), str(raw), "--window", "16", "--stride", "8"])
    assert r.exit_code == 0 and "where each label holds" in r.output
    bad_options = ((["--window", "17"], "--window must be in 1..16"),
                   (["--window", "8", "--stride", "0"], "--stride must be >= 1"))
    for bad, pattern in bad_options:
        r = CliRunner().invoke(main, ["predict", str(run_dir), str(raw), *bad])
        assert r.exit_code != 0 and pattern in r.output and "Traceback" not in r.output
