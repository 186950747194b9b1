"""`skpipe export`: a trained run as a TorchScript or ONNX file, checked against PyTorch.

The exported network takes the model's input, (B, [M,] T, V, C) float32 frames as the run feeds
them (its stream and normalisation applied, T frames sampled), and `lengths` (B,) int64 valid
frames (only the LSTM reads them), and returns (B, num_classes) logits. Batch and frame axes are
dynamic. Before the file is written, the exported model runs on real clips of the run's cache at
two batch sizes and frame counts; it is refused when any logit differs from PyTorch's by more
than `tolerance`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.layouts import Skeleton
from pipeline import SkpipeError
from pipeline.files.atomic import check_target, sweep_stale
from pipeline.files.location import Location
from pipeline.infer.formats import FORMATS
from pipeline.infer.inference import load_run_model
from pipeline.inputs.dataset import SkeletonDataset
from pipeline.run.config import open_run

TOLERANCE = 1e-3  # max |logit difference|: float32 kernels of two engines, summed over ~10 layers


def real_inputs(run_dir: Path, clips: int = 8, cache_dir: Location | None = None
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of real clips from the run's own cache, as the run feeds them: the first `clips`
    test (else val) clips at the run's frame count, and half of them at half the frames."""
    run = open_run(run_dir)
    cache = run.open_cache(cache_dir)
    t = run.config.train
    for subset in ("test", "val"):
        cfg = t.loader_config(subset, cache.skeleton, batch_size=clips)
        try:
            x, _, lengths, _ = next(iter(SkeletonDataset(cache, cfg)))
        except SkpipeError:
            continue
        half, n = max(1, t.frames // 2), max(1, len(x) // 2)
        shorter = x[:n].narrow(x.dim() - 3, 0, half).contiguous()  # (n, [M,] T/2, V, C)
        return [(x, lengths), (shorter, lengths[:n].clamp(max=half))]
    raise SkpipeError(f"{run_dir}: its cache has no test or val clips to check the export on")


def _run_onnx(path: Path, x: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feed = {"x": x.numpy(), "lengths": lengths.numpy()}
    return np.asarray(session.run(None, {n: feed[n] for n in names})[0])


def _export(model: torch.nn.Module, fmt: str, example: tuple[torch.Tensor, torch.Tensor], path: Path) -> None:
    with warnings.catch_warnings():  # tracer and exporter notes; the check below is what counts
        warnings.simplefilter("ignore")
        _write(model, fmt, example, path)


def _write(model: torch.nn.Module, fmt: str, example: tuple[torch.Tensor, torch.Tensor], path: Path) -> None:
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
        traced.save(str(path))
        return
    axes = {"x": {0: "batch", example[0].dim() - 3: "frames"}, "lengths": {0: "batch"},
            "logits": {0: "batch"}}  # x (B, [M,] T, V, C)
    torch.onnx.export(model, example, str(path), input_names=["x", "lengths"], output_names=["logits"],
                      dynamic_axes=axes, opset_version=17, dynamo=False)


def export_run(run_dir: Path, fmt: str = "torchscript", out: Path | None = None, force: bool = False,
               checkpoint: str = "best", tolerance: float = TOLERANCE, cache_dir: Location | None = None
               ) -> dict[str, Any]:
    """Write the run's model as `fmt` to `out` (default RUN/export/model.pt|.onnx) once it agrees
    with PyTorch on real clips; return the path and the largest difference seen."""
    if fmt not in FORMATS:
        raise SkpipeError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            raise SkpipeError("ONNX export needs the onnx extra: pip install 'skpipe[onnx]' "
                              "(onnx and onnxruntime)") from None
    run = open_run(run_dir)
    model, ckpt = load_run_model(run, checkpoint)  # refuses a run without a checkpoint
    out = Path(out) if out is not None else run.directory / "export" / f"model{FORMATS[fmt]}"
    check_target(out, force, "export")
    batches = real_inputs(run.directory, cache_dir=cache_dir)
    sweep_stale(out)  # what a killed export left behind
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        _export(model.float().eval(), fmt, batches[0], tmp)
        worst = 0.0
        loaded = torch.jit.load(str(tmp)) if fmt == "torchscript" else None
        for x, lengths in batches:
            with torch.no_grad():
                want = model(x, lengths).numpy()
                got = loaded(x, lengths).numpy() if loaded is not None else _run_onnx(tmp, x, lengths)
            worst = max(worst, float(np.abs(got - want).max()))
        if worst > tolerance:
            raise SkpipeError(f"the {fmt} export differs from PyTorch by {worst:.2e} > {tolerance:g} on "
                              "real clips; not written")
        os.replace(tmp, out)
    except SkpipeError:
        raise
    except Exception as e:  # exporters raise many types for an unsupported graph
        first = str(e).splitlines()[0][:160] if str(e) else ""
        raise SkpipeError(f"{fmt} export failed: {type(e).__name__}: {first}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    t = run.config.train
    return {"path": out, "format": fmt, "max_abs_diff": worst,
            "checked_batches": [tuple(x.shape) for x, _ in batches], "checkpoint": str(ckpt),
            "frames": t.frames, "feats": t.feats, "normalize": t.normalize,
            "input": input_shape(run.config.input)}


def input_shape(skeleton: Skeleton) -> str:
    """The exported model's x, in words: (B, [M,] T, V, C)."""
    persons = f"M={skeleton.persons}, " if skeleton.persons > 1 else ""
    return f"(B, {persons}T, V={skeleton.num_joints}, C={skeleton.channels}) {skeleton.layout['name']}"
