"""`skpipe demo --quick` end to end, and evaluate / compare / predict through the CLI."""

import io
import json

from click.testing import CliRunner

from cli.main import main
from tests.conftest import TEST_DATA


def test_demo_quick_end_to_end(tmp_path):
    r = CliRunner().invoke(main, ["demo", "--quick", "--workdir", str(tmp_path / "d")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "lstm" in r.output and "stgcn" in r.output and "accuracy" in r.output
    runs = sorted((tmp_path / "d" / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        assert (run / "eval" / "test" / "report.json").exists()
    assert "| lstm |" in (tmp_path / "d" / "comparison-quick.md").read_text()
    # evaluate again needs --force; val works; compare; predict on a real clip
    r = CliRunner().invoke(main, ["evaluate", str(runs[0])])
    assert r.exit_code != 0 and "already exists" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["evaluate", str(runs[0]), "--subset", "val"])
    assert r.exit_code == 0 and "weakest" in r.output
    first = (runs[0] / "eval" / "test" / "report.json").read_bytes()
    r = CliRunner().invoke(main, ["evaluate", str(runs[0]), "--clips", "3", "--checkpoint", "last"])
    assert r.exit_code == 0, r.output  # other settings: kept beside the first, no --force
    assert json.loads((runs[0] / "eval" / "test-last-clips3" / "report.json").read_text())["num_clips"] == 3
    assert (runs[0] / "eval" / "test" / "report.json").read_bytes() == first
    r = CliRunner().invoke(main, ["compare", *map(str, runs), "--markdown", str(tmp_path / "t.md")])
    assert r.exit_code == 0 and (tmp_path / "t.md").exists()
    r = CliRunner().invoke(main, ["predict", str(runs[1]), str(TEST_DATA / "mini_ucf101.pkl"), "--json"])
    assert r.exit_code == 0
    assert len([json.loads(line) for line in r.output.splitlines()]) == 6
    r = CliRunner().invoke(main, ["predict", str(runs[1]), str(TEST_DATA / "mini_ucf101.pkl"), "--top", "3"])
    assert r.exit_code == 0 and "6 clips; top-1 agrees" in r.output and "next 2" in r.output
    assert len(r.output.splitlines()) < 20  # one line per clip, not a table each
    r = CliRunner().invoke(main, ["predict", str(runs[1]), str(TEST_DATA / "mini_ucf101.pkl"), "--top", "0"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    # a pickle of another layout, and a GPU where there is none: one line each, nothing written
    import pickle

    import numpy as np
    import torch

    from tests.conftest import make_ann

    ann = make_ann()
    ann["keypoint"] = np.zeros((1, 10, 25, 2), np.float16)
    ann["keypoint_score"] = np.zeros((1, 10, 25), np.float16)
    (tmp_path / "v25.pkl").write_bytes(pickle.dumps([ann]))
    r = CliRunner().invoke(main, ["predict", str(runs[1]), str(tmp_path / "v25.pkl")])
    assert r.exit_code != 0 and len(r.output.splitlines()) == 1
    assert "holds 25 joints in 2D with scores" in r.output and "reads 17 joints in 2D" in r.output
    if not torch.cuda.is_available():
        before = sorted(p.name for p in runs[0].rglob("*"))
        for args in (["predict", str(runs[1]), str(TEST_DATA / "mini_ucf101.pkl")],
                     ["evaluate", str(runs[0]), "--subset", "val", "--force"],
                     ["ensemble", str(runs[0]), str(runs[1])]):
            r = CliRunner().invoke(main, [*args, "--device", "cuda"])
            assert r.exit_code != 0 and "no CUDA device" in r.output and "Traceback" not in r.output
        assert sorted(p.name for p in runs[0].rglob("*")) == before
    # a second demo reuses the cache and adds new runs, overwriting nothing
    r = CliRunner().invoke(main, ["demo", "--quick", "--workdir", str(tmp_path / "d")])
    assert r.exit_code == 0 and "reusing" in r.output
    assert len(list((tmp_path / "d" / "runs").iterdir())) == 4


def test_evaluate_refuses_non_runs(tmp_path):
    r = CliRunner().invoke(main, ["evaluate", str(tmp_path)])
    assert r.exit_code != 0 and "not a skpipe run" in r.output


def test_names_from_files_cannot_paint_the_terminal_or_break_markup(tmp_path):
    """Class names with escape sequences, a forged newline and rich markup print escaped, in one
    piece, through info, train and evaluate."""
    from tests.conftest import tiny_dataset, write_pickle

    raw = write_pickle(tmp_path / "raw.pkl", tiny_dataset(classes=3))
    names = tmp_path / "names.txt"
    names.write_text("Bad[/nosuch]\nred\x1b[31mtext\nfake\u2028Error: forged\n")
    cache = tmp_path / "cache"
    for args in (["ingest", raw, "--cache", cache, "--class-names", names],
                 ["build-splits", "--cache", cache, "--val-fraction", 0.3], ["info", "--cache", cache],
                 ["train", "lstm", "--cache", cache, "--epochs", 1, "--frames", 8, "--threads", 1,
                  "--out", tmp_path / "runs"]):
        r = CliRunner().invoke(main, [str(a) for a in args])
        assert r.exit_code == 0, r.output
        assert "\x1b" not in r.output and "\u2028" not in r.output
    (run,) = (tmp_path / "runs").iterdir()
    r = CliRunner().invoke(main, ["evaluate", str(run)])
    assert r.exit_code == 0 and "\x1b" not in r.output and "Traceback" not in r.output, r.output
    assert "Bad[/nosuch]" in r.output and "red\\x1b[31mtext" in r.output


def test_demo_in_an_unwritable_workdir_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    for where in ("/proc/skpipe-demo", str(tmp_path / "file" / "d")):
        r = CliRunner().invoke(main, ["demo", "--quick", "--workdir", where])
        assert r.exit_code == 1 and "Traceback" not in r.output and "--workdir" in r.output
        assert len(r.output.strip().splitlines()) == 1, r.output


def test_predict_at_80_columns_keeps_names_whole(tmp_path, synth_cache):
    from pipeline.run.options import TrainConfig
    from pipeline.train.fit import fit

    run = fit(TrainConfig(model="stgcn", cache=str(synth_cache), out=str(tmp_path), epochs=1, frames=8,
                          threads=1)).run_dir
    r = CliRunner().invoke(main, ["predict", str(run), str(TEST_DATA / "mini_ucf101.pkl"), "--top", "3",
                                  "--window", "8"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert all(len(line) <= 80 for line in lines) and "…" not in r.output
    names = json.loads((run / "config.json").read_text())["class_names"]
    shown = [word for line in lines for word in line.split() if word in names]
    assert len(shown) >= 6 * 3  # every top-3 class name whole, on one line


def test_predict_render_of_a_many_clip_pickle_names_its_clip(tmp_path, synth_cache):
    from pipeline.run.options import TrainConfig
    from pipeline.train.fit import fit

    run = fit(TrainConfig(model="lstm", cache=str(synth_cache), out=str(tmp_path), epochs=1, frames=8,
                          threads=1)).run_dir
    pkl = str(TEST_DATA / "mini_ucf101.pkl")
    r = CliRunner().invoke(main, ["predict", str(run), pkl, "--render", str(tmp_path / "a.gif")])
    assert r.exit_code == 1 and "holds 6: name it with --frame-dir" in r.output
    r = CliRunner().invoke(main, ["predict", str(run), pkl, "--render", str(tmp_path / "a.gif"),
                                  "--frame-dir", "nope"])
    assert r.exit_code == 1 and "no clip named 'nope'" in r.output
    import pickle

    second = pickle.loads((TEST_DATA / "mini_ucf101.pkl").read_bytes())
    names = [a["frame_dir"] for a in (second["annotations"] if isinstance(second, dict) else second)]
    r = CliRunner().invoke(main, ["predict", str(run), pkl, "--render", str(tmp_path / "a.gif"),
                                  "--frame-dir", names[2], "--json"])
    assert r.exit_code == 0, r.output
    drawn = [json.loads(line) for line in r.output.splitlines() if "render" in json.loads(line)]
    assert [d["frame_dir"] for d in drawn] == [names[2]] and (tmp_path / "a.gif").stat().st_size > 0


def test_a_quick_demo_beside_a_full_one_uses_its_own_data_and_table(tmp_path):
    """The quick demo once reused a full demo's 10-class cache and overwrote its table."""
    from pipeline.demo import DemoConfig, demo_config, run_demo

    work = str(tmp_path / "d")
    full = DemoConfig(work, classes=3, per_class=12, frames=16, epochs={"lstm": 1, "stgcn": 1}, clips=1)
    _, _, table = run_demo(full)
    before = table.read_text()
    _, _, quick_table = run_demo(demo_config(work, quick=True))
    assert quick_table != table and table.read_text() == before
    from pipeline.data.cache import open_cache

    assert open_cache(tmp_path / "d" / "cache").manifest.num_classes == 3
    assert open_cache(tmp_path / "d" / "cache-quick").manifest.num_classes == 4


def test_predict_notes_a_clip_shorter_than_the_window_and_refuses_stride_alone(tmp_path, synth_cache):
    import pickle

    import numpy as np

    from pipeline.run.options import TrainConfig
    from pipeline.train.fit import fit

    run = fit(TrainConfig(model="stgcn", cache=str(synth_cache), out=str(tmp_path), epochs=1, frames=8,
                          threads=1)).run_dir
    data = pickle.loads((TEST_DATA / "mini_ucf101.pkl").read_bytes())
    ann = dict((data["annotations"] if isinstance(data, dict) else data)[0])
    ann["keypoint"] = np.asarray(ann["keypoint"])[:, :5]  # (M, 5, V, 2)
    ann["keypoint_score"] = np.asarray(ann["keypoint_score"])[:, :5]
    ann["total_frames"] = 5
    short = tmp_path / "short.pkl"
    short.write_bytes(pickle.dumps([ann]))
    r = CliRunner().invoke(main, ["predict", str(run), str(short), "--window", "8"])
    assert r.exit_code == 0, r.output
    assert "shorter than --window 8" in r.output and "5 frames" in r.output
    r = CliRunner().invoke(main, ["predict", str(run), str(short), "--stride", "2"])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1 and lines == ["Error: --stride needs --window (the frames each label covers)"]


def test_compare_tables_fit_80_columns_without_cutting_a_stream():
    import pandas as pd
    from rich.console import Console

    from cli.evaluate import _compare_table, _seed_table
    from pipeline.infer.compare import seed_statistics

    df = pd.DataFrame([dict(run=f"ucf101-{m}-j-split1-20261205-11111{s}", model=m, feats="j,b,jm,bm", seed=s,
                            epochs=65, accuracy=0.8, weighted_f1=0.8, macro_f1=0.8, parameters=3_099_241,
                            train_s_per_epoch=47.3, recipe="recommended", split="xview", subset="test",
                            num_clips=1, config="{}", dataset="ucf101")
                       for s in range(2) for m in ("pyskl_stgcn", "stgcnpp")])
    out = Console(width=80, record=True, file=io.StringIO())
    out.print(_compare_table(df, ["w"], "Comparison on test"))
    out.print(_seed_table(seed_statistics(df), "Seeds"))
    text = out.export_text()
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    assert "stream" in text and "s/ep" in text and "jm, bm" in text and "3.10M" in text
