"""The commands that read runs: `skpipe evaluate`, `compare`, `ensemble`, `export`, `predict`,
`demo`, `zoo` and `import`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.table import Table

from cli.options import (
    checkpoint_option,
    clips_option,
    device_option,
    force_option,
    frame_dir_option,
    inference_precision_option,
    run_cache_option,
    run_dir_argument,
    run_dirs_argument,
    subset_option,
    threads_option,
)
from cli.ui import batch_progress, configure_process, console, download_progress, shown, user_errors
from pipeline import SkpipeError
from pipeline.infer.formats import CLASS_LISTS, DEFAULT_FORMAT, DEPRECATED, FORMATS, export_format


@click.command()
@run_dir_argument
@subset_option()
@checkpoint_option
@clips_option
@run_cache_option
@device_option("cpu")
@inference_precision_option
@threads_option
@force_option("an existing evaluation")
@user_errors
def evaluate(run_dir: Path, subset: str, checkpoint: str, clips: int | None, cache_dir: str | None,
             device: str, precision: str, threads: int | None, force: bool) -> None:
    """Evaluate a trained run on a subset of its split; write RUN_DIR/eval/<subset>/."""
    from pipeline.infer.evaluate import evaluate_run

    configure_process(threads)
    with batch_progress(f"Evaluating on {subset}") as progress:
        r = evaluate_run(run_dir, subset, checkpoint, clips, cache_dir, force, device=device,
                         progress=progress, precision=precision)
    rep = r.report
    t = Table(title=f"{rep.model} · split {shown(rep.split)} · {subset}", show_header=False)
    t.add_row("clips", f"{rep.samples:,}, {rep.num_clips} temporal clip(s) each, "
              f"{Path(rep.checkpoint).name}, {rep.inference_precision}")
    _score_rows(t, rep.scores)
    for kind, a in (("macro", rep.scores.macro), ("weighted", rep.scores.weighted)):
        t.add_row(f"{kind} P / R / F1", f"{a.precision:.4f} / {a.recall:.4f} / {a.f1:.4f}")
    console.print(t)
    pc = r.per_class
    weak = pc[pc["support"] > 0].sort_values(["f1", "support"]).head(10)
    w = Table(title="Ten weakest classes (by F1)")
    for col in ("class", "support", "precision", "recall", "F1"):
        w.add_column(col, justify="left" if col == "class" else "right")
    for row in weak.itertuples():
        w.add_row(shown(row._1), str(row.support), f"{row.precision:.2f}", f"{row.recall:.2f}",
                  f"{row.f1:.2f}")
    console.print(w)
    console.print(f"written: {shown(str(r.out))}/report.json, per_class.csv, confusion.csv, "
                  "confusion.png", soft_wrap=True)


def _score_rows(t: Table, scores: Any) -> None:
    t.add_row("top-1 accuracy", f"{scores.accuracy:.2%}")
    t.add_row("top-5 accuracy", f"{scores.top5_accuracy:.2%}")
    t.add_row("mean class accuracy", f"{scores.mean_class_accuracy:.2%}")


def _compare_table(df: Any, warnings: list[str], title: str) -> Table:
    """Fits 80 columns: short headers, no vertical rules; each row numbered, the run names whole
    (dataset first) in the caption under their numbers."""
    caption = "runs: " + ", ".join(f"{i} {shown(r)}" for i, r in enumerate(df["run"], start=1))
    t = Table(title=title, caption=caption + (" · ⚠ see warnings" if warnings else ""), box=box.SIMPLE_HEAD,
              pad_edge=False)
    for col in ("#", "model", "stream", "seed", "ep", "acc", "w-F1", "m-F1", "params", "s/ep"):
        t.add_column(col, justify="left" if col in ("model", "stream") else "right",
                     no_wrap=col != "stream", overflow="fold",  # streams wrap whole, never "stre…"
                     min_width=len(col) if col == "stream" else None)
    for i, r in enumerate(df.itertuples(), start=1):
        ensemble = r.model == "ensemble"
        t.add_row(str(i), r.model, r.feats.replace(",", ", "), "-" if ensemble else str(r.seed),
                  "-" if ensemble else str(r.epochs),
                  f"{r.accuracy:.2%}", f"{r.weighted_f1:.4f}", f"{r.macro_f1:.4f}",
                  "-" if ensemble else f"{r.parameters / 1e6:.2f}M",  # the Markdown keeps every digit
                  "-" if r.train_s_per_epoch != r.train_s_per_epoch else f"{r.train_s_per_epoch:.1f}")
    return t


def _seed_table(stats: Any, title: str) -> Table:
    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("model", "stream", "recipe", "split", "seeds", "accuracy", "weighted F1"):
        t.add_column(col, justify="left" if col in ("model", "stream", "recipe", "split") else "right",
                     overflow="fold", no_wrap=col in ("accuracy", "weighted F1", "seeds"))
    for r in stats.itertuples():
        std = "" if r.runs < 2 else f" ± {r.accuracy_std:.2%}"
        t.add_row(r.model, r.feats.replace(",", ", "), r.recipe, str(r.split), str(r.seeds),
                  f"{r.accuracy_mean:.2%}{std}", f"{r.weighted_f1_mean:.4f}")
    return t


@click.command()
@run_dirs_argument
@subset_option()
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path), help="Also write Markdown.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write CSV.")
@click.option("--split", help="Only the runs of this protocol.")
@force_option("existing --markdown / --csv files")
@user_errors
def compare(run_dirs: tuple[Path, ...], subset: str, markdown: Path | None, csv_path: Path | None,
            split: str | None, force: bool) -> None:
    """Compare evaluated runs in one table (model, accuracy, F1, parameters, time)."""
    from pipeline.files.atomic import atomic_write_text, check_target
    from pipeline.infer.compare import compare_runs, seed_statistics, to_markdown

    for target in (markdown, csv_path):
        if target is not None:
            check_target(target, force, "file")
    df, warnings = compare_runs(list(run_dirs), subset, split)
    console.print(_compare_table(df, warnings, f"Comparison on {subset}"))
    stats = seed_statistics(df)
    if (stats["runs"] > 1).any():
        console.print(_seed_table(stats, f"Seeds of one config on {subset}: mean ± std"))
    for w in warnings:
        console.print(f"[bold yellow]warning:[/bold yellow] {shown(w)}")
    if markdown:
        atomic_write_text(markdown, to_markdown(df, warnings))
    if csv_path:
        atomic_write_text(csv_path, df.drop(columns="config").to_csv(index=False))


@click.command()
@run_dirs_argument
@click.option("--weights", help="Comma-separated weight per run (default: equal), e.g. 1,1,0.5,0.5.")
@subset_option()
@clips_option
@checkpoint_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Report directory (default: ensembles/<runs> beside the runs' folder).")
@run_cache_option
@device_option("cpu")
@inference_precision_option
@threads_option
@force_option("an existing report")
@user_errors
def ensemble(run_dirs: tuple[Path, ...], weights: str | None, subset: str, clips: int | None,
             checkpoint: str, out: Path | None, cache_dir: str | None, device: str, precision: str,
             threads: int | None, force: bool) -> None:
    """Fuse the class probabilities of runs on one cache and protocol (e.g. joint + bone streams)."""
    from pipeline.infer.evaluate import ensemble_runs

    w = None
    if weights is not None:
        try:
            w = [float(v) for v in weights.split(",")]
        except ValueError:
            raise SkpipeError(f"--weights must be numbers separated by commas, got {weights!r}") from None
    configure_process(threads)
    with batch_progress(f"Running a model on {subset}") as progress:
        r = ensemble_runs(list(run_dirs), w, subset, clips, out, force, checkpoint, device,
                          cache_dir=cache_dir, progress=progress, precision=precision)
    rep = r.report
    t = Table(title=f"Ensemble of {len(run_dirs)} runs · split {shown(rep.split)} · {subset} · "
              f"{rep.samples:,} clips", show_header=False)
    for run, wt, feats in zip(rep.runs, rep.weights, rep.feats, strict=True):
        again = "its evaluation reused" if Path(run).name in r.reused else "run now"
        t.add_row(shown(Path(run).name), f"stream {feats}, weight {wt:g}, {again}")
    _score_rows(t, rep.scores)
    console.print(t)
    console.print(f"written: {shown(str(r.out))}/report.json, per_class.csv, confusion.csv, "
                  "confusion.png", soft_wrap=True)


@click.command()
@run_dir_argument
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)),
              help=f"pt2: a torch.export program; onnx (the onnx extra); torchscript (deprecated). "
                   f"Default: the one --out's suffix names, else {DEFAULT_FORMAT}.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (default: RUN_DIR/export/model.pt2, .onnx or .pt).")
@checkpoint_option
@run_cache_option
@threads_option
@force_option("an existing file")
@user_errors
def export(run_dir: Path, fmt: str | None, out: Path | None, checkpoint: str, cache_dir: str | None,
           threads: int | None, force: bool) -> None:
    """Write the run's model as a self-describing file (class names, skeleton, frames, stream,
    normalisation inside), checked against PyTorch on real clips as `skpipe.load` feeds it."""
    from pipeline.infer.export import TOLERANCE, export_run

    configure_process(threads)
    fmt = export_format(fmt, out)
    if fmt in DEPRECATED:
        console.print(f"[yellow]note[/yellow]: {DEPRECATED[fmt]}")
    with console.status(f"Exporting {run_dir} as {fmt}"):
        r = export_run(run_dir, fmt, out, force, checkpoint, cache_dir=cache_dir)
    card = r["card"]
    console.print(f"wrote {shown(str(r['path']))}: max |logit difference| vs PyTorch "
                  f"{r['max_abs_diff']:.1e} (limit {TOLERANCE:g}) on {r['checked_on']} "
                  f"{', '.join(str(s) for s in r['checked_batches'])}", soft_wrap=True)
    lengths = "; lengths (B,) int64" if "lengths" in card.inputs else " (the model reads no lengths)"
    console.print(f"inputs: x {r['input']} float32{lengths}; stream {r['feats']}, normalize "
                  f"{r['normalize']}, {r['frames']} frames, {card.num_clips} clip(s) averaged; output logits "
                  f"(B, {len(card.class_names)}). Feed it with skpipe.load(PATH).predict(...) or "
                  "skpipe.batches.", soft_wrap=True)
    if fmt == "pt2":
        console.print("[yellow]note[/yellow]: a .pt2 opens with skpipe.load(PATH, trusted=True) only "
                      "(torch.export's loader can run code): to ship the model to others, export "
                      "--format onnx", soft_wrap=True)


@click.command()
@run_dir_argument
@click.argument("raw", type=click.Path(path_type=Path))
@click.option("--top", default=1, show_default=True, type=click.IntRange(min=1),
              help="Classes shown per clip.")
@checkpoint_option
@clips_option
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1),
              help="Clips preprocessed and run together; memory does not grow with the pickle.")
@click.option("--window", type=int, help="Also label each window of W frames along every clip.")
@click.option("--stride", type=int, help="Frames between windows (default: a quarter window).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per clip (JSON lines).")
@click.option("--render", type=click.Path(dir_okay=False, path_type=Path),
              help="Draw the clip (one video or clip) with its skeleton and the label along it: "
                   ".gif, or .mp4 / .avi with the video extra.")
@frame_dir_option
@device_option("cpu")
@inference_precision_option
@threads_option
@force_option("the --render file")
@user_errors
def predict(run_dir: Path, raw: Path, top: int, checkpoint: str, clips: int | None, batch_size: int,
            window: int | None, stride: int | None, as_json: bool, render: Path | None,
            frame_dir: str | None, device: str, precision: str, threads: int | None, force: bool) -> None:
    """Top classes for every clip of RAW: a pickle (a dict, a list, or one annotation), as ingest
    sees it, or a video or folder of videos, extracted as `skpipe extract` would."""
    from pipeline.infer.predict import iter_predictions

    configure_process(threads)
    results = iter_predictions(run_dir, raw, top, checkpoint, clips, batch_size, window, stride, device,
                               render, force, frame_dir, precision)
    if as_json:  # JSON lines, streamed
        for r in results:
            click.echo(json.dumps(r))
        return
    done: list[dict[str, Any]] = []
    try:
        for r in results:
            done.append(r)
    except SkpipeError as e:  # videos left out: show what was predicted, then the line, exit 1
        if not done:
            raise
        _prediction_table(done, raw, top, window)
        raise click.ClickException(str(e)) from None
    _prediction_table(done, raw, top, window)


def _prediction_table(results: list[dict[str, Any]], raw: Path, top: int, window: int | None) -> None:
    t = Table(title=f"Predictions for {shown(str(raw))}", box=box.SIMPLE_HEAD)  # fits 80 columns:
    t.add_column("clip", overflow="fold")  # names folded, never cut
    t.add_column("label", justify="right")
    t.add_column("top-1", no_wrap=True)
    if top > 1:
        t.add_column(f"next {top - 1}", no_wrap=True)  # one class a line
    if window is not None:
        t.add_column("where each label holds (frames)", overflow="fold")
    for r in results:
        best, rest = r["top"][0], r["top"][1:]
        row = [shown(r["frame_dir"]), "-" if r["label"] is None else str(r["label"]),
               f"{shown(best['class'])} {best['probability']:.0%}"]
        if top > 1:
            row.append("\n".join(f"{shown(p['class'])} {p['probability']:.0%}" for p in rest))
        if window is not None:
            row.append(shown(timeline(r["windows"])))
        t.add_row(*row)
    console.print(t)
    short = [r for r in results if window is not None and r["windows"]
             and r["windows"][-1]["end"] + 1 < window]
    if short:  # window_starts clamps the window to the clip: say so, it is not an error
        frames = short[0]["windows"][-1]["end"] + 1
        some = f"{len(short):,} clip{'s' if len(short) != 1 else ''}"
        console.print(f"note: {some} shorter than --window {window} "
                      f"(e.g. {shown(short[0]['frame_dir'])}, {frames:,} frames) labelled as one window of "
                      "the whole clip")
    for r in results:
        if "render" in r:
            console.print(f"drew {shown(r['frame_dir'])} to {shown(r['render'])}")
    named = [r for r in results if r["label_class"] is not None]
    if not named:  # label numbers of another dataset say nothing about this run's classes
        n = len(results)
        console.print(f"{n:,} clip{'s' if n != 1 else ''}; no class names to compare with, so no agreement "
                      "is reported")
        return
    hits = sum(r["top"][0]["class"] == r["label_class"] for r in named)
    console.print(f"{len(results):,} clips; top-1 agrees with the pickle's class name for {hits:,} of "
                  f"{len(named):,} ({hits / len(named):.1%})")


def timeline(windows: list[dict[str, Any]]) -> str:
    """Consecutive windows with the same top-1 class merged: 'A 0-95, B 80-200'."""
    spans: list[list[Any]] = []
    for w in windows:
        name = w["top"][0]["class"]
        if spans and spans[-1][0] == name:
            spans[-1][2] = w["end"]
        else:
            spans.append([name, w["start"], w["end"]])
    return ", ".join(f"{n} {a}-{b}" for n, a, b in spans)


@click.command()
@click.option("--workdir", default="skpipe-demo", show_default=True, type=click.Path(path_type=Path))
@click.option("--quick", is_flag=True, help="A tiny run (well under a minute), for tests.")
@click.option("--raw", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A real ucf101_2d.pkl: T = 300, batch 32, 50 LSTM / 100 ST-GCN epochs.")
@click.option("--split", default="1", show_default=True, help="The protocol to train and test on.")
@force_option("a demo cache built from another pickle")
@user_errors
def demo(workdir: Path, quick: bool, raw: Path | None, split: str, force: bool) -> None:
    """Generate data, ingest, split, train both models, evaluate on test, compare."""
    from cli.train import EpochView
    from pipeline.demo import demo_config, run_demo

    configure_process()
    cfg = demo_config(str(workdir), quick, str(raw) if raw else None, force, split)
    view = EpochView()

    def event(name: str, info: dict[str, Any]) -> None:
        if name == "stage":
            view.close()
            console.rule(f"[bold]{info['name']}[/bold] · {info['detail']}")
        else:
            view(name, info)

    try:
        df, warnings, table = run_demo(cfg, event)
    finally:
        view.close()
    console.print(_compare_table(df, warnings, f"BiLSTM vs ST-GCN on the test subset (split {split})"))
    for w in warnings:
        console.print(f"[bold yellow]warning:[/bold yellow] {shown(w)}")
    if quick:
        console.print("[yellow]--quick is a smoke test (4 classes, 2 epochs): its accuracies say "
                      "nothing about the models; `skpipe demo` trains them properly.[/yellow]")
    console.print(f"Table: {table}. Reports, confusion matrices and curves: {workdir / 'runs'}/*/")


@click.command()
@click.option("--dataset", help="Only the models of this dataset (NTU60, NTU120, HaGRID).")
@click.option("--json", "as_json", is_flag=True, help="Print the listing as a JSON array.")
@user_errors
def zoo(dataset: str | None, as_json: bool) -> None:
    """The published skeleton checkpoints of PYSKL and MMAction2: what they were trained on, their
    published top-1, and whether `skpipe import NAME` takes them."""
    from pipeline.infer.catalog import listed, to_json

    entries = listed(dataset)
    if as_json:
        click.echo(to_json(entries))
        return
    t = Table(title="The zoo: published skeleton checkpoints", box=box.SIMPLE_HEAD, pad_edge=False,
              caption="top-1: as its project publishes it, on its own test split · import: `skpipe import "
              "NAME` takes it (fetched, checked against its published sha256)")
    for col in ("name", "from", "keypoints", "top-1", "params", "import"):
        t.add_column(col, justify="right" if col in ("top-1", "params") else "left",
                     overflow="fold", ratio=4 if col == "name" else None)
    for e in entries:
        t.add_row(e.name, f"{e.project}\n{e.dataset} {e.protocol}", e.keypoints,
                  "-" if e.top1 != e.top1 else f"{e.top1:.2f}", e.parameters, "yes" if e.importable else "no")
    console.print(t)


@click.command("import")
@click.argument("checkpoint")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
              help="Its PYSKL / MMAction2 config (.py), read as data, never run: strides, layout and the "
                   "test pipeline come from it (else PYSKL's defaults, named in the output).")
@click.option("--classes", help=f"Class names: a file of one name per line, or {', '.join(CLASS_LISTS)}.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="The run directory to write (default: zoo/NAME).")
@click.option("--mirror", metavar="URL", help="Fetch a listed model from this base address instead of its "
              "project's (a local or company mirror).")
@force_option("an existing --out")
@user_errors
def import_(checkpoint: str, config: Path | None, classes: str | None, out: Path | None, mirror: str | None,
            force: bool) -> None:
    """Import a PYSKL or MMAction2 ST-GCN / ST-GCN++ checkpoint as a skpipe run: a model `skpipe
    zoo` lists (by name), an http(s) URL, or a .pth file. predict, export, ensemble, skpipe.load
    and train --init take the run like one skpipe trained."""
    from pipeline.infer.zoo import fetch_checkpoint, import_checkpoint

    with download_progress(f"Fetching {shown(checkpoint)}") as progress:
        path_in, listed = fetch_checkpoint(checkpoint, mirror, progress)
    out = out or Path("zoo") / (listed.name if listed is not None else path_in.stem)
    with console.status(f"Importing {shown(str(path_in))}"):
        path, imp, run = import_checkpoint(path_in, out, config, classes, force, listed)
    p, a = imp.pipeline, imp.arch
    console.print(f"wrote {shown(str(path))}: {imp.model} from {imp.origin}, {run.parameters:,} parameters, "
                  f"{imp.num_classes} classes ({shown(run.source['classes'])})", soft_wrap=True)
    console.print(f"skeleton {shown(imp.skeleton.describe())} · {a.num_stages} stages, base "
                  f"{a.base_channels}, inflate {list(a.inflate_stages)}, down {list(a.down_stages)}, "
                  f"data BN {a.data_bn}")
    console.print(f"test pipeline: normalize {p.normalize}{' ' + p.mode if p.normalize == '2d' else ''}, "
                  f"feats {p.feats}, {p.clip_len} frames x {p.num_clips} clips, {p.num_person} person(s), "
                  f"average {p.average}")
    if imp.assumed:
        console.print("[yellow]assumed[/yellow] (not in the weights or config): "
                      f"{shown('; '.join(imp.assumed))}", soft_wrap=True)
    console.print(f"next: skpipe predict {shown(str(path))} VIDEO|PICKLE --window {p.clip_len}",
                  soft_wrap=True)
