"""`skpipe evaluate`: metrics of a trained run on one subset of its split, written once.

Every figure comes from scikit-learn. With `clips` K > 1, softmax probabilities are averaged
over K fixed temporal clips per sample, as PYSKL / MMAction2 report skeleton results.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from models.layouts import Skeleton
from pipeline import SkpipeError
from pipeline.data.cache import Cache, open_cache
from pipeline.data.splits import SUBSETS
from pipeline.files.atomic import atomic_write_bytes, atomic_write_text
from pipeline.files.location import Location
from pipeline.infer.inference import prefetch
from pipeline.infer.report import (
    REPORT_NAME,
    Averages,
    EnsembleReport,
    Report,
    Scores,
    read_probs,
    read_report,
    to_json,
    write_probs,
)
from pipeline.infer.shipped import ShippedModel, run_model
from pipeline.inputs.dataset import SkeletonDataset
from pipeline.run.config import Run, open_run
from pipeline.run.runtime import resolve_device

BatchFn = Callable[[int, int], None]  # (batches done, batches)


def predict_subset(model: ShippedModel, cache: Cache, run: Run, subset: str, clips: int = 1,
                   batch_size: int = 64, progress: BatchFn | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probs (N, C), labels (N,), samples (N,)): one pass over the subset through the predictor,
    each sample's `clips` temporal clips folded into its batch, batches built where the model
    runs. `progress(batches done, batches)` after each batch."""
    t = run.config.train
    cfg = t.loader_config(subset, cache.skeleton, batch_size=batch_size, clips=clips,
                          device=str(model.device))
    ds = SkeletonDataset(cache, cfg)
    total = len(ds)
    probs, labels, samples = [], [], []
    for i, (x, y, lengths, s) in enumerate(prefetch(ds)):  # x (B * clips, [M,] T, V, C)
        probs.append(model.fed_probabilities(x, lengths, clips))  # (B, classes)
        labels.append(y.cpu().numpy())  # on the device when it built the batch
        samples.append(s.numpy())
        if progress is not None:
            progress(i + 1, total)
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(samples)


def imported_subset_probs(model: ShippedModel, run: Run, cache: Cache, subset: str, batch_size: int = 64,
                          progress: BatchFn | None = None) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """An imported model on `subset` of the cache's default protocol: each cached row turned back
    into an annotation (2D coordinates times the clip's img_w / img_h: pixels, as PYSKL's pipeline
    expects; its valid frames; scores where the model reads them) and fed through the predictor.
    Labels are the model's indices of the cache's class names; a class the model lacks is one
    line. Returns (protocol, probs (N, C), labels (N,), samples (N,))."""
    from pipeline.data.splits import read_splits

    ours, theirs = model.card.input, cache.skeleton
    if (ours.num_joints, ours.dims) != (theirs.num_joints, theirs.dims) or (ours.score and not theirs.score):
        raise SkpipeError(f"{run.directory} reads {ours.describe()}; the cache holds {theirs.describe()}")
    frame, meta = read_splits(cache)
    split = meta.default_name()
    chosen = frame[(frame["split"] == split) & (frame["subset"] == subset)]
    rows = np.sort(chosen["sample"].to_numpy())
    if not len(rows):
        raise SkpipeError(f"protocol {split} of {cache.directory} has no {subset} clips")
    index = cache.index.set_index("sample").loc[rows]
    position = {name: i for i, name in enumerate(run.class_names)}
    lacking = sorted(set(index["class_name"]) - set(position))
    if lacking:
        raise SkpipeError(f"the cache's class {lacking[0]!r} is not among the model's {len(position)} "
                          "classes (imported models are evaluated on the classes they name)")
    arr = cache.open_array()
    probs, total = [], -(-len(rows) // batch_size)
    for b, lo in enumerate(range(0, len(rows), batch_size)):
        some = rows[lo : lo + batch_size]
        x = np.asarray(arr.get_orthogonal_selection((some,)), np.float32)  # (B, [M,] T, V, C)
        anns = [_row_annotation(x[i], index.loc[s], theirs) for i, s in enumerate(some)]
        probs.append(model.probabilities(anns))
        if progress is not None:
            progress(b + 1, total)
    labels = np.array([position[c] for c in index["class_name"]], np.int64)
    return split, np.concatenate(probs), labels, rows


def _row_annotation(x: np.ndarray, info: Any, skeleton: Skeleton) -> dict[str, Any]:
    """A cached row ([M,] T, V, C) as the PYSKL annotation it was made from (its valid frames)."""
    kp = x if skeleton.persons > 1 else x[None]  # (M, T, V, C)
    kp = kp[:, : max(1, int(info["valid_frames"]))]
    ann: dict[str, Any] = {"frame_dir": str(info["frame_dir"]), "label": 0, "total_frames": kp.shape[1]}
    if skeleton.dims == 2:
        h, w = int(info["img_h"]), int(info["img_w"])  # a 2D cache has them (null in 3D)
        ann["img_shape"] = (h, w)
        ann["keypoint"] = kp[..., :2] * np.array([w, h], np.float32)
        if skeleton.score:
            ann["keypoint_score"] = kp[..., 2]
    else:
        ann["keypoint"] = kp[..., :3]
    return ann


def compute_metrics(y_true: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Every figure of the report, from scikit-learn. Averages over sklearn's default labels
    (the classes present in y_true or y_pred); per-class rows for every class."""
    num = len(class_names)
    labels = np.arange(num)
    y_pred = probs.argmax(1)
    p, r, f, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    avg = {}
    for kind in ("macro", "weighted"):
        ap, ar, af, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=kind, zero_division=0)
        avg[kind] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}
    # with 5 classes or fewer every label is in the top 5
    top5 = skm.top_k_accuracy_score(y_true, probs, k=5, labels=labels) if num > 5 else 1.0
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "top5_accuracy": float(top5),
        "mean_class_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "macro": avg["macro"], "weighted": avg["weighted"],
        "per_class": pd.DataFrame({
            "class": class_names, "support": support, "precision": p, "recall": r, "f1": f,
            "accuracy": r,  # per-class accuracy is the class's recall
        }),
        "confusion": skm.confusion_matrix(y_true, y_pred, labels=labels),
    }


def scores_of(m: dict[str, Any]) -> Scores:
    return Scores(m["accuracy"], m["top5_accuracy"], m["mean_class_accuracy"], Averages(**m["macro"]),
                  Averages(**m["weighted"]))


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate_run` and `ensemble_runs` return: the report as written, the per-class
    table, where they were written, and (for an ensemble) the fused probabilities (N, classes)."""

    report: Report | EnsembleReport
    per_class: pd.DataFrame
    out: Path
    probs: np.ndarray | None = None
    reused: list[str] = field(default_factory=list)  # runs whose saved probabilities were fused


def evaluate_run(run_dir: Path, subset: str = "test", checkpoint: str = "best", clips: int | None = None,
                 cache_dir: Location | None = None, force: bool = False, device: str = "cpu",
                 batch_size: int = 64, progress: BatchFn | None = None, precision: str = "fp32"
                 ) -> Evaluation:
    """Evaluate a run on `subset`; write RUN/eval/<subset>/{report.json, per_class.csv, ...,
    probs.npz} (the probabilities, which `ensemble` fuses without running the model again)."""
    if subset not in SUBSETS:
        raise SkpipeError(f"unknown subset {subset!r}; choose from {', '.join(SUBSETS)}")
    dev = resolve_device(device)  # --device cuda without a GPU: refused before any work
    run = open_run(run_dir)
    if run.config.imported:  # its pipeline samples its own K clips: --clips cannot change that
        k = run.config.pipeline().num_clips
        if clips is not None and clips != k:
            raise SkpipeError(f"--clips {clips}: an imported model is fed by its own test pipeline, "
                              f"{k} clip(s) a sample (its config's num_clips)")
        clips = k
    clips = clips if clips is not None else run.config.train.num_clips
    if clips < 1:
        raise SkpipeError(f"--clips must be >= 1, got {clips}")
    out = run.eval_dir(subset, checkpoint, clips)
    if (out / REPORT_NAME).exists() and not force:
        raise SkpipeError(f"{out / REPORT_NAME} already exists (use --force to replace it)")
    split = run.split
    if run.config.imported:  # PYSKL's pipeline on the cache's rows, labels matched by class name
        if cache_dir is None:
            raise SkpipeError(f"{run.directory} is an imported model: name the cache to evaluate it on "
                              "(--cache DIR)")
        cache = open_cache(cache_dir)
        model, ckpt_path = run_model(run, checkpoint, device, precision)
        split, probs, y, samples = imported_subset_probs(model, run, cache, subset, batch_size, progress)
    else:
        cache = run.open_cache(cache_dir)  # refused first when it is another build
        model, ckpt_path = run_model(run, checkpoint, device, precision)
        probs, y, samples = predict_subset(model, cache, run, subset, clips, batch_size, progress)
    names = run.class_names
    m = compute_metrics(y, probs, names)
    t = run.config.train
    report = Report(
        run=str(run.directory), model=run.model, split=split, subset=subset,
        checkpoint=str(ckpt_path), num_clips=clips, samples=int(len(y)), parameters=model.parameters,
        manifest_hash=run.config.manifest_hash, device=str(dev), frames=t.frames, feats=t.feats,
        scores=scores_of(m), inference_precision=model.precision)
    out.mkdir(parents=True, exist_ok=True)
    write_probs(out, probs, samples)  # before report.json, whose presence says it is complete
    write_report(out, report, m, names, f"{run.directory.name} · {subset}")
    return Evaluation(report, m["per_class"], out)


def spreadsheet_safe(name: str) -> str:
    """A class name a spreadsheet will not run as a formula (OWASP's CSV injection advice: a
    leading = + - @ tab or carriage return is prefixed with a quote)."""
    return f"'{name}" if name[:1] in ("=", "+", "-", "@", "\t", "\r") else name


def write_report(out: Path, report: Report | EnsembleReport, m: dict[str, Any], names: list[str],
                 title: str) -> None:
    """report.json, per_class.csv, confusion.csv and confusion.png in `out`; report.json last, so
    its presence means the evaluation is complete."""
    out.mkdir(parents=True, exist_ok=True)
    per_class = m["per_class"].copy()
    per_class["class"] = [spreadsheet_safe(c) for c in per_class["class"]]
    atomic_write_text(out / "per_class.csv", per_class.to_csv(index=False))
    safe = [spreadsheet_safe(c) for c in names]
    conf = pd.DataFrame(m["confusion"], index=safe, columns=safe)
    atomic_write_text(out / "confusion.csv", conf.to_csv())
    atomic_write_bytes(out / "confusion.png", confusion_png(m["confusion"], names, title))
    atomic_write_text(out / REPORT_NAME, to_json(report))


ENSEMBLES_DIR = "ensembles"


def ensemble_runs(run_dirs: list[Path], weights: list[float] | None = None, subset: str = "test",
                  clips: int | None = None, out: Path | None = None, force: bool = False,
                  checkpoint: str = "best", device: str = "cpu", cache_dir: Location | None = None,
                  progress: BatchFn | None = None, precision: str = "fp32") -> Evaluation:
    """Fuse the softmax probabilities of runs on one cache and protocol (PYSKL's 2- and 4-stream
    fusion): a weighted mean, evaluated and written like `evaluate`. A run evaluated on `subset`
    with the same checkpoint and clips lends its saved probabilities; the others are run."""
    if len(run_dirs) < 2:
        raise SkpipeError("ensemble needs at least two runs")
    weights = list(weights) if weights is not None else [1.0] * len(run_dirs)
    if len(weights) != len(run_dirs):
        raise SkpipeError(f"--weights has {len(weights)} values for {len(run_dirs)} runs")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise SkpipeError("--weights must be >= 0 and not all 0")
    if subset not in SUBSETS:
        raise SkpipeError(f"unknown subset {subset!r}; choose from {', '.join(SUBSETS)}")
    dev = resolve_device(device)
    runs = [open_run(d) for d in run_dirs]
    first = runs[0]
    cache = first.open_cache(cache_dir)
    for r in runs[1:]:
        for what, same in (("cache", cache.built_as(r.config.manifest_hash)),
                           ("protocol", r.split == first.split),
                           ("classes", r.class_names == first.class_names)):
            if not same:
                raise SkpipeError(f"{r.directory} and {first.directory} differ in {what}: "
                                  "only runs on the same cache, protocol and classes can be fused")
    # beside runs/, not in it: `skpipe compare runs/*` lists runs, `compare ensembles/*` these
    name = "+".join(r.directory.name for r in runs)[:200]
    out = out or first.directory.parent.parent / ENSEMBLES_DIR / name
    if (out / REPORT_NAME).exists() and not force:
        raise SkpipeError(f"{out / REPORT_NAME} already exists (use --force to replace it)")
    # refuses a run without a checkpoint first
    models = [run_model(r, checkpoint, device, precision) for r in runs]
    fused: np.ndarray | None = None
    labels = samples = None
    reused: list[str] = []
    for run, (model, path), w in zip(runs, models, weights, strict=True):
        k = clips if clips is not None else run.config.train.num_clips
        saved = _saved_probs(run, subset, checkpoint, path, k, cache, model.precision)
        if saved is not None:
            p, y, s = saved
            reused.append(run.directory.name)
        else:
            p, y, s = predict_subset(model, cache, run, subset, k, progress=progress)
        if samples is not None and not np.array_equal(s, samples):
            raise SkpipeError(f"{run.directory} saw other {subset} clips than {first.directory}")
        labels, samples = y, s
        fused = w * p if fused is None else fused + w * p
    assert fused is not None and labels is not None
    fused /= sum(weights)
    names = first.class_names
    m = compute_metrics(labels, fused, names)
    report = EnsembleReport(
        runs=[str(r.directory) for r in runs], weights=weights, split=first.split, subset=subset,
        samples=int(len(labels)), manifest_hash=first.config.manifest_hash,
        feats=[r.config.train.feats for r in runs], device=str(dev), scores=scores_of(m),
        inference_precision=precision)
    write_report(out, report, m, names, f"ensemble of {len(runs)} runs · {subset}")
    return Evaluation(report, m["per_class"], out, fused, reused)


def _saved_probs(run: Run, subset: str, name: str, checkpoint: Path, clips: int, cache: Cache,
                 precision: str = "fp32") -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(probs, labels, samples) from the run's own evaluation of `subset`, where it was made with
    this checkpoint (`name`, at `checkpoint`), clip count and precision; labels come from the cache, the rows
    must be the subset's."""
    out = run.eval_dir(subset, name, clips)
    if not (out / REPORT_NAME).is_file():
        return None
    try:
        rep = read_report(out / REPORT_NAME, Report)
    except SkpipeError:
        return None
    made_as = (rep.num_clips, Path(rep.checkpoint), rep.manifest_hash, rep.inference_precision)
    if made_as != (clips, checkpoint, run.config.manifest_hash, precision):
        return None
    saved = read_probs(out, run.config.num_classes)
    if saved is None:
        return None
    probs, samples = saved
    index = cache.index
    if len(samples) and (samples.min() < 0 or samples.max() >= len(index)):
        return None
    return probs, index["label"].to_numpy()[samples].astype(np.int64), samples


def worst_pairs(confusion: np.ndarray, k: int = 10) -> list[tuple[int, int, float]]:
    """The k largest off-diagonal row-normalized cells: (true, predicted, fraction)."""
    rows = confusion.sum(1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    np.fill_diagonal(norm, 0)
    flat = np.argsort(norm, axis=None)[::-1][:k]
    pairs = [(int(i), int(j), float(norm[i, j])) for i, j in zip(*np.unravel_index(flat, norm.shape),
                                                                    strict=True)]
    return [p for p in pairs if p[2] > 0]


def _drawable(name: str) -> str:
    """A class name as a font can draw it: control characters as their escapes (`\\x1b`)."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: m.group().encode("unicode_escape").decode("ascii"), name)


def confusion_png(confusion: np.ndarray, names: list[str], title: str) -> bytes:
    """Row-normalized heatmap readable at 101 classes; the ten worst confusions boxed and listed."""
    buf = io.BytesIO()
    # sized for the names, and cropped to what is drawn, so nothing is cut at an edge
    confusion_figure(confusion, names, title).savefig(buf, format="png", dpi=100, bbox_inches="tight",
                                                      pad_inches=0.15)
    return buf.getvalue()


def confusion_figure(confusion: np.ndarray, names: list[str], title: str) -> Any:
    """The matplotlib Figure of `confusion_png`, sized for its longest class name."""
    from matplotlib.figure import Figure  # no pyplot: no process-wide backend or figure registry
    from matplotlib.patches import Rectangle

    names = [_drawable(name) for name in names]
    n = len(names)
    rows = confusion.sum(1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    side = max(6.0, 0.19 * n + 3)  # inches: ~0.19 in a class keeps 101 names legible at 100 dpi
    fontsize = 10 if n <= 20 else 7.5 if n <= 50 else 6
    chars = max((len(s) for s in names), default=0)
    label = chars * fontsize * 0.62 / 72  # inches of the longest name, rotated below and beside
    listed = max(5.0, (chars + 20) * 11 * 0.62 / 72)  # the worst confusions' column, monospace 11
    # sized for the names: a fixed size once cut the "predicted class" label off
    fig = Figure(figsize=(side + 0.9 + listed + label, side + 1.5 + label), layout="constrained")
    grid = fig.add_gridspec(1, 2, width_ratios=[side + 0.9, listed])
    ax, tax = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    cax = ax.inset_axes((1.02, 0.0, 0.025, 1.0))  # in the matrix's own box: exactly its height
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")  # white = 0
    ax.set_xticks(range(n), names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), names, fontsize=fontsize)
    if n > 20:  # faint guides every 10 classes, to follow a row or a column by eye
        for k in range(10, n, 10):
            ax.axhline(k - 0.5, color="0.85", linewidth=0.5)
            ax.axvline(k - 0.5, color="0.85", linewidth=0.5)
    ax.set_xlabel("predicted class (columns)")
    ax.xaxis.set_label_position("top")  # above the matrix: below, long rotated names once hid it
    ax.set_ylabel("true class")
    fig.suptitle(f"{title}\nconfusion matrix, each row normalized to 1", fontsize=12)
    pairs = worst_pairs(confusion)
    for i, j, _ in pairs:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=8,
                            color="black" if norm[i, j] < 0.6 else "white")
    fig.colorbar(im, cax=cax, label="share of the true class")
    lines = ["Worst confusions", "(red boxes; true → predicted,", " share of the true class)", ""]
    lines += [f"{k + 1:2d}. {names[i]}\n    → {names[j]}: {f:.0%} ({confusion[i, j]})"
              for k, (i, j, f) in enumerate(pairs)]
    tax.axis("off")
    tax.text(0.0, 1.0, "\n".join(lines) if pairs else "No confusions", va="top", ha="left",
             fontsize=11, family="monospace", transform=tax.transAxes)
    return fig
