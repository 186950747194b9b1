"""`skpipe synth`, `ingest`, `build-splits`, `info`: from a raw pickle to a checked cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from cli.options import cache_option, force_option
from cli.ui import console, human_bytes, shown, stage_progress, user_errors
from models.layouts import LAYOUTS
from pipeline import SkpipeError
from pipeline.data.preprocess import DTYPES


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--classes", default=10, show_default=True, help="Number of classes (<= 101).")
@click.option("--per-class", default=40, show_default=True, help="Clips per class.")
@click.option("--seed", default=0, show_default=True)
@click.option("--full", is_flag=True, help="UCF101-sized: 101 classes, 13,320 clips.")
@force_option("OUT if it exists")
@user_errors
def synth(out: Path, classes: int, per_class: int, seed: int, full: bool, force: bool) -> None:
    """Write a synthetic skeleton pickle in the real PYSKL UCF101 format to OUT."""
    from pipeline.source.synth import SynthConfig, write_synth

    cfg = SynthConfig(classes=classes, per_class=per_class, seed=seed, full=full)
    with console.status("Generating synthetic clips"):
        s = write_synth(out, cfg, force=force)
    t = Table(title=f"Synthetic pickle {out}", show_header=False)
    for k, v in s.items():
        t.add_row(k, human_bytes(v) if k == "bytes" else f"{v:.1f}" if isinstance(v, float) else str(v))
    console.print(t)


@click.command()
@click.argument("raw", type=click.Path(path_type=Path))
@cache_option
@click.option("--dtype", type=click.Choice(DTYPES), default=DTYPES[0], show_default=True)
@click.option("--chunk", default=64, show_default=True, help="Samples per Zarr chunk.")
@click.option("--class-names", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Text file with one class name per line, in label order.")
@click.option("--layout", metavar="NAME|FILE.toml",
              help=f"The joint layout: {', '.join(LAYOUTS)} or a file of your own (default: the built-in "
                   "layout with the pickle's number of joints; `skpipe layouts` lists them).")
@click.option("--persons", type=click.IntRange(1, 2),
              help="Persons kept per clip, in a fixed order (default 1; 2 for 3D pickles with two).")
@force_option("an existing cache")
@user_errors
def ingest(raw: Path, cache_dir: str, dtype: str, chunk: int, class_names: Path | None,
           layout: str | None, persons: int | None, force: bool) -> None:
    """Validate and preprocess RAW (a PYSKL pickle: 2D or 3D, any layout) into the tensor cache,
    once."""
    from pipeline.data.cache import IngestConfig
    from pipeline.data.cache import ingest as run_ingest

    if "://" in cache_dir:
        raise SkpipeError("ingest writes a local cache (atomically); copy it to shared storage after")
    names = None
    if class_names is not None:
        names = [ln.strip() for ln in class_names.read_text().splitlines() if ln.strip()]
    cfg = IngestConfig(dtype=dtype, chunk=chunk, layout=layout_option(layout), persons=persons)
    with stage_progress() as progress:
        s = run_ingest(raw, Path(cache_dir), cfg, force=force, class_names=names, progress=progress)
    t = Table(title=f"Ingested into {shown(str(s.cache_dir))}", show_header=False)
    t.add_row("samples", f"{s.samples:,}")
    t.add_row("skeleton", shown(s.skeleton))
    t.add_row("classes", str(s.classes))
    t.add_row("persons per clip", "  ".join(f"{k}: {v:,}" for k, v in s.persons_hist.items()))
    t.add_row("clips longer than 300 frames", f"{s.longer_than_max:,} (truncated)")
    t.add_row("clips with nobody (all zeros)", f"{s.empty:,}")
    t.add_row("non-finite joints zeroed", f"{s.nonfinite:,}")
    t.add_row("size on disk", f"{human_bytes(s.bytes_on_disk)} "
              f"({s.bytes_on_disk / s.bytes_float32:.1%} of the float32 array)")
    t.add_row("seconds", f"{s.seconds:.1f} (reading the pickle {s.read_seconds:.1f})")
    console.print(t)


@click.command("build-splits")
@cache_option
@click.option("--protocol", "protocols", multiple=True, metavar="NAME=TRAINKEY,TESTKEY",
              help="Name a pair of the pickle's split keys that fits no naming pattern (repeatable).")
@click.option("--group-by", metavar="REGEX",
              help="Group clips by the regex's first capture group in frame_dir when carving val "
                   "(default: UCF101 gNN, NTU performer, else each clip alone).")
@click.option("--val-by", metavar="view|subject|REGEX",
              help="Val holds whole views or subjects of train (or a regex's first group), as the "
                   "protocol's test does: NTU C###/P###, NW-UCLA v##/s##, MSR s## are found by name.")
@click.option("--val-fraction", default=0.1, show_default=True,
              help="About this fraction of each class's train clips goes to val, by whole groups.")
@click.option("--test-fraction", default=0.3, show_default=True,
              help="Test fraction of the stratified fallback (no split in the pickle, no groups).")
@click.option("--seed", default=0, show_default=True)
@force_option("existing splits")
@user_errors
def build_splits(cache_dir: str, protocols: tuple[str, ...], group_by: str | None, val_by: str | None,
                 val_fraction: float, test_fraction: float, seed: int, force: bool) -> None:
    """Write CACHE/splits.parquet: train / val / test for each evaluation protocol.

    Protocols come from the pickle's split keys: train{k}/test{k} -> "k", {p}_train/{p}_val|test
    -> "p", train/test|val -> "default". Only a pickle with no split at all gets UCF101's test
    groups or a seeded stratified draw, named "1", "2", "3"."""
    from pipeline.data.cache import open_cache
    from pipeline.data.protocols import parse_protocol_option
    from pipeline.data.splits import SplitConfig, write_splits

    cfg = SplitConfig(val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                      group_by=group_by, val_by=val_by,
                      protocols=tuple(parse_protocol_option(p) for p in protocols))
    _, meta = write_splits(open_cache(cache_dir), cfg, force=force)
    console.print(protocol_table(meta, f"Protocols in {cache_dir}/splits.parquet"))
    for w in meta.warnings():
        console.print(f"[bold yellow]warning:[/bold yellow] {shown(w)}")


def protocol_table(meta, title: str) -> Table:  # type: ignore[no-untyped-def]
    """Protocols with how each was made, their key pair, and clips per subset."""
    from pipeline.data.splits import SUBSETS, protocol_summary

    methods = {p.method for p in meta.protocols}
    made = ("the pickle's own split lists" if methods == {"official"} else
            "no split in the pickle: UCF101 test groups" if methods == {"ucf101-groups"} else
            "no split in the pickle and no UCF101 groups: a seeded stratified draw of whole groups")
    carved = meta.val_by or f"whole groups ({meta.grouping})"
    t = Table(title=title, caption=f"{made}; val carved from train: {shown(carved)}")
    for col in ("split", "method", "keys", *SUBSETS):
        t.add_column(col, justify="right" if col in SUBSETS else "left")
    for row in protocol_summary(meta):
        t.add_row(shown(row["split"]), row["method"], shown(row["keys"]),
                  *(f"{row[s]:,}" for s in SUBSETS))
    return t


@click.command()
@cache_option
@click.option("--no-hash", is_flag=True, help="Compare the source by size only (skip hashing it).")
@click.option("--verify", is_flag=True, help="Read every chunk and table and report damaged ones.")
@click.option("--classes", "all_classes", is_flag=True, help="Show the clips of every class.")
@user_errors
def info(cache_dir: str, no_hash: bool, verify: bool, all_classes: bool) -> None:
    """Show what is in the cache, its protocols, its classes, and whether it is stale."""
    from pipeline.data.cache import open_cache, source_status, verify_cache
    from pipeline.data.splits import read_splits_meta, splits_problems

    cache = open_cache(cache_dir)
    m = cache.manifest
    t = Table(title=shown(cache_dir), show_header=False)
    t.add_row("created", f"{m.created} by skpipe {m.skpipe_version} (schema {m.schema_version})")
    t.add_row("source", f"{shown(m.source['path'])} ({human_bytes(m.source['size'])}, "
              f"sha256 {shown(m.source['sha256'][:16])}…)")
    a = m.array
    t.add_row("array", f"{a['path']} {tuple(a['shape'])} {a['dtype']} chunks {tuple(a['chunks'])} "
              f"{a['codec']}-{a['level']}")
    t.add_row("skeleton", shown(cache.skeleton.describe()))
    t.add_row("preprocessing", shown(", ".join(f"{k}={v}" for k, v in m.preprocessing.items())))
    t.add_row("counts", shown(", ".join(f"{k}={_count(v)}" for k, v in m.counts.items())))
    if m.source_splits:
        listed = ", ".join(f"{k}: {_count(v)}" for k, v in m.source_splits.items())
        t.add_row("splits in the pickle", shown(listed))
    t.add_row("manifest hash", cache.manifest_hash[:16] + "…")
    console.print(t)
    status, detail = source_status(m, check_hash=not no_hash)
    style = {"ok": "green", "changed": "bold red", "missing": "yellow"}[status]
    console.print(f"[{style}]{'STALE: ' if status == 'changed' else ''}{shown(detail)}[/{style}]")
    try:
        console.print(protocol_table(read_splits_meta(cache), "Protocols (--split NAME)"))
    except SkpipeError as e:
        console.print(f"[yellow]{e}[/yellow]")
    console.print(_class_table(cache.index, m.class_names, all_classes))
    if verify:
        with stage_progress({"verify": "Verifying chunks"}) as progress:
            problems = verify_cache(cache, progress) + splits_problems(cache)
        for p in problems:
            console.print(f"[bold red]damaged:[/bold red] {shown(p)}")
        if problems:
            raise SkpipeError(f"{len(problems)} damaged part(s) in {cache_dir}; rebuild with "
                              "`skpipe ingest --force` (or `build-splits --force` for the protocols)")
        console.print("[green]verified: every chunk decodes and matches its checksum; every table "
                      "matches the manifest[/green]")


def _count(v: object) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def _class_table(index, names: list[str], everything: bool) -> Table:  # type: ignore[no-untyped-def]
    counts = index["label"].value_counts().reindex(range(len(names)), fill_value=0)
    top = max(int(counts.max()), 1)
    caption = None
    if not everything and len(names) > 12:  # one screen: the smallest and largest classes
        order = counts.sort_values(kind="stable")
        counts = order.iloc[[*range(5), *range(len(order) - 5, len(order))]]
        caption = f"the 5 smallest and 5 largest of {len(names)} classes; --classes shows all"
    t = Table(title=f"Clips per class ({len(names)} classes)", caption=caption)
    t.add_column("label", justify="right")
    t.add_column("class")
    t.add_column("clips", justify="right")
    t.add_column("")
    for lab, c in counts.items():
        bar = "█" * max(1, round(20 * int(c) / top)) if c else ""
        t.add_row(str(lab), shown(names[lab]), str(int(c)), bar)
    return t


def layout_option(value: str | None) -> dict[str, Any] | None:
    """--layout: a built-in name, or a TOML file of the same keys (checked); None: detect."""
    from models.layouts import LayoutError, read_layout

    if value is None:
        return None
    if value in LAYOUTS:
        return LAYOUTS[value]
    if not value.endswith(".toml"):
        raise SkpipeError(f"--layout {value!r} is neither a built-in layout ({', '.join(LAYOUTS)}) nor "
                          "a .toml file")
    try:
        return read_layout(Path(value))
    except LayoutError as e:
        raise SkpipeError(f"--layout {value}: {e}") from None


@click.command()
@click.argument("name", required=False)
def layouts(name: str | None) -> None:
    """The built-in joint layouts (or one of them, joint by joint)."""
    from models.layouts import check_layout

    if name is not None and name not in LAYOUTS:
        raise click.ClickException(f"no built-in layout {name!r}; choose from {', '.join(LAYOUTS)}")
    if name is None:
        t = Table(title="Built-in layouts", caption="`skpipe layouts NAME`: its joints; "
                  "`ingest --layout FILE.toml`: your own")
        for col in ("layout", "V", "centre", "used by"):
            t.add_column(col, justify="right" if col == "V" else "left", no_wrap=col != "used by")
        for key, d in LAYOUTS.items():
            t.add_row(key, str(len(d["joints"])), d["joints"][d["center"]], LAYOUT_NOTES.get(key, ""))
        console.print(t)
        return
    d = check_layout(LAYOUTS[name])
    t = Table(title=f"{name}: joint, parent (bones), left/right twin")
    for col in ("#", "joint", "parent", "twin"):
        t.add_column(col, justify="right" if col == "#" else "left")
    twin = {a: b for a, b in d["pairs"]} | {b: a for a, b in d["pairs"]}
    for j, joint in enumerate(d["joints"]):
        parent = "(root)" if d["parents"][j] == j else d["joints"][d["parents"][j]]
        t.add_row(str(j), joint + (" *" if j == d["center"] else ""), parent,
                  d["joints"][twin[j]] if j in twin else "")
    t.caption = "* the centre joint"
    console.print(t)


LAYOUT_NOTES = {
    "coco17": "PYSKL's 2D releases (default)",
    "openpose18": "Kinetics-Skeleton",
    "ntu25": "NTU RGB+D 60/120 (Kinect v2)",
    "kinect20": "NW-UCLA, UTKinect, MSR (Kinect v1)",
    "mediapipe33": "MediaPipe pose (videos)",
}
