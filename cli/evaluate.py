"""`skpipe evaluate`, `compare`, `predict`, `demo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from cli.ui import console, user_errors

run_dir_arg = click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))


@click.command()
@run_dir_arg
@click.option("--subset", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--checkpoint", default="best", show_default=True, help="best, last, or a .pt path.")
@click.option("--clips", default=1, show_default=True,
              help="Average softmax over K fixed temporal clips (runs trained with --frames < 300).")
@click.option("--cache", "cache_dir", help="The run's cache (path or URL), if it moved; the same build.")
@click.option("--force", is_flag=True, help="Replace an existing evaluation.")
@user_errors
def evaluate(run_dir: Path, subset: str, checkpoint: str, clips: int, cache_dir: str | None,
             force: bool) -> None:
    """Evaluate a trained run on a subset of its split; write RUN_DIR/eval/<subset>/."""
    from pipeline.evaluate import evaluate_run

    with console.status(f"Evaluating {run_dir} on {subset}"):
        r = evaluate_run(run_dir, subset, checkpoint, clips, cache_dir, force)
    rep = r["report"]
    t = Table(title=f"{rep['model']} · split {rep['split']} · {subset} · {rep['samples']:,} clips "
              f"· {clips} clip(s) · {Path(rep['checkpoint']).name}", show_header=False)
    t.add_row("top-1 accuracy", f"{rep['accuracy']:.2%}")
    t.add_row("top-5 accuracy", f"{rep['top5_accuracy']:.2%}")
    t.add_row("mean class accuracy", f"{rep['mean_class_accuracy']:.2%}")
    for kind in ("macro", "weighted"):
        a = rep[kind]
        t.add_row(f"{kind} P / R / F1", f"{a['precision']:.4f} / {a['recall']:.4f} / {a['f1']:.4f}")
    console.print(t)
    pc = r["per_class"]
    weak = pc[pc["support"] > 0].sort_values(["f1", "support"]).head(10)
    w = Table(title="Ten weakest classes (by F1)")
    for col in ("class", "support", "precision", "recall", "F1"):
        w.add_column(col, justify="left" if col == "class" else "right")
    for row in weak.itertuples():
        w.add_row(row._1, str(row.support), f"{row.precision:.2f}", f"{row.recall:.2f}", f"{row.f1:.2f}")
    console.print(w)
    console.print(f"written: {r['out']}/report.json, per_class.csv, confusion.csv, confusion.png")


def _compare_table(df: Any, warnings: list[str], title: str) -> Table:
    caption = "runs: " + ", ".join(df["run"])
    t = Table(title=title, caption=caption + (" · ⚠ see warnings" if warnings else ""))
    for col in ("model", "epochs", "accuracy", "weighted F1", "macro F1", "parameters", "s / epoch"):
        t.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for r in df.itertuples():
        t.add_row(r.model, str(r.epochs), f"{r.accuracy:.2%}", f"{r.weighted_f1:.4f}",
                  f"{r.macro_f1:.4f}", f"{r.parameters:,}", f"{r.train_s_per_epoch:.1f}")
    return t


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--subset", default="test", show_default=True)
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path), help="Also write Markdown.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write CSV.")
@user_errors
def compare(run_dirs: tuple[Path, ...], subset: str, markdown: Path | None, csv_path: Path | None) -> None:
    """Compare evaluated runs, like the seed's Table 2."""
    from pipeline.compare import compare_runs, to_markdown

    df, warnings = compare_runs(list(run_dirs), subset)
    console.print(_compare_table(df, warnings, f"Comparison on {subset}"))
    for w in warnings:
        console.print(f"[bold yellow]warning:[/bold yellow] {w}")
    if markdown:
        markdown.write_text(to_markdown(df, warnings))
    if csv_path:
        df.to_csv(csv_path, index=False)


@click.command()
@run_dir_arg
@click.argument("raw", type=click.Path(path_type=Path))
@click.option("--top", default=5, show_default=True)
@click.option("--checkpoint", default="best", show_default=True)
@click.option("--clips", default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@user_errors
def predict(run_dir: Path, raw: Path, top: int, checkpoint: str, clips: int, as_json: bool) -> None:
    """Top classes for every clip of RAW (a dict, a list, or one annotation), as ingest sees it."""
    from pipeline.predict import predict_file

    results = predict_file(run_dir, raw, top, checkpoint, clips)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    for r in results:
        t = Table(title=f"{r['frame_dir']} (label {r['label']})")
        t.add_column("class")
        t.add_column("probability", justify="right")
        for p in r["top"]:
            t.add_row(p["class"], f"{p['probability']:.1%}")
        console.print(t)


@click.command()
@click.option("--workdir", default="skpipe-demo", show_default=True, type=click.Path(path_type=Path))
@click.option("--quick", is_flag=True, help="A tiny run (well under a minute), for tests.")
@click.option("--raw", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A real ucf101_2d.pkl: the seed's full protocol on split 1.")
@click.option("--split", default="1", show_default=True, help="The protocol to train and test on.")
@click.option("--force", is_flag=True, help="Rebuild a demo cache built from another pickle.")
@user_errors
def demo(workdir: Path, quick: bool, raw: Path | None, split: str, force: bool) -> None:
    """Generate data, ingest, split, train both models, evaluate on test, compare."""
    from cli.train import EpochView
    from pipeline.demo import demo_config, run_demo

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
        console.print(f"[bold yellow]warning:[/bold yellow] {w}")
    console.print(f"Table: {table}. Reports, confusion matrices and curves: {workdir / 'runs'}/*/")
