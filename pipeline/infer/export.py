"""`skpipe export`: a trained run as an ONNX file or a torch.export program (`.pt2`; TorchScript
still works, deprecated), self-describing (`pipeline.infer.shipped.ModelCard` inside) and checked
against PyTorch through the same loader and feed a user will use.

The exported network takes the model's input, (B, [M,] T, V, C) float32 frames as the run feeds
them (its stream and normalisation applied, T frames sampled), and `lengths` (B,) int64 valid
frames (only the LSTM reads them), and returns (B, num_classes) logits. Batch and frame axes are
dynamic (the exporter drops `lengths` from an ONNX graph whose model ignores it; the card lists
the graph's inputs). Before the file is written, the exported model runs on real clips of the run's cache at
two batch sizes and frame counts; it is refused when any logit differs from PyTorch's by more
than `tolerance`.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.layouts import Skeleton
from pipeline import SkpipeError
from pipeline.files.atomic import atomic_write_bytes, check_target, sweep_stale
from pipeline.files.location import Location
from pipeline.infer.card import CARD_FILE, CARD_KEY, ModelCard, card_of
from pipeline.infer.formats import FORMATS, export_format
from pipeline.infer.inference import load_run_model
from pipeline.infer.shipped import from_bytes
from pipeline.inputs.dataset import SkeletonDataset
from pipeline.run.config import open_run

TOLERANCE = 1e-3  # max |logit difference|: float32 kernels of two engines, summed over ~10 layers


def real_inputs(run_dir: Path, clips: int = 8, cache_dir: Location | None = None
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of real clips from the run's own cache, as the run feeds them: the first `clips`
    test (else val) clips at the run's frame count, and half of them at half the frames."""
    run = open_run(run_dir)
    if run.config.imported:
        return seeded_inputs(run.config.input, run.config.train.frames)
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


def seeded_inputs(skeleton: Skeleton, frames: int, clips: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """An imported model has no cache: seeded normal inputs of its shape, at its frames and at
    half of them, the coordinates of PYSKL's normalised range."""
    g = torch.Generator().manual_seed(0)
    persons = (skeleton.persons,) if skeleton.persons > 1 else ()
    out = []
    for n, t in ((clips, frames), (max(1, clips // 2), max(1, frames // 2))):
        x = torch.randn(n, *persons, t, skeleton.num_joints, skeleton.channels, generator=g)
        out.append((x, torch.full((n,), t, dtype=torch.int64)))
    return out


def _export(model: torch.nn.Module, fmt: str, example: tuple[torch.Tensor, torch.Tensor],
            card: Callable[[tuple[str, ...]], ModelCard]) -> bytes:
    """The exported file's bytes, built in memory (a full disk fails in Python's write, with a
    line, not in torch's zip writer with an abort), with the card `card(inputs)` inside."""
    with warnings.catch_warnings():  # tracer and exporter notes; the check below is what counts
        warnings.simplefilter("ignore")
        buf = io.BytesIO()
        if fmt == "torchscript":
            with torch.no_grad():
                traced = torch.jit.trace(model, example, check_trace=False)
            torch.jit.save(traced, buf, _extra_files={CARD_FILE: card(("x", "lengths")).to_json()})
        elif fmt == "pt2":
            _export_program(model, example, buf, card)
        else:
            return _export_onnx(model, example, card)
        return buf.getvalue()


def _export_program(model: torch.nn.Module, example: tuple[torch.Tensor, torch.Tensor], buf: io.BytesIO,
                    card: Callable[[tuple[str, ...]], ModelCard]) -> None:
    auto = torch.export.Dim.AUTO  # the exporter finds each axis's range (strides constrain T)
    t_axis = example[0].dim() - 3  # x (B, [M,] T, V, C)
    shapes = ({0: auto, t_axis: auto}, {0: auto})
    program = torch.export.export(model, example, dynamic_shapes=shapes, strict=False)
    torch.export.save(program, buf, extra_files={CARD_FILE: card(("x", "lengths")).to_json()})


def onnx_graph(model: torch.nn.Module, example: tuple[torch.Tensor, torch.Tensor]) -> bytes:
    """The model as a bare ONNX graph (no card): dynamic batch and frames, opset 17."""
    buf = io.BytesIO()
    axes = {"x": {0: "batch", example[0].dim() - 3: "frames"}, "lengths": {0: "batch"},
            "logits": {0: "batch"}}  # x (B, [M,] T, V, C)
    torch.onnx.export(model, example, buf, input_names=["x", "lengths"],  # type: ignore[arg-type]
                      output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return buf.getvalue()


def _export_onnx(model: torch.nn.Module, example: tuple[torch.Tensor, torch.Tensor],
                 card: Callable[[tuple[str, ...]], ModelCard]) -> bytes:
    import onnx

    proto = onnx.load_model_from_string(onnx_graph(model, example))
    c = card(tuple(i.name for i in proto.graph.input))  # the exporter drops inputs the model ignores
    sk = c.input
    readable = {CARD_KEY: c.to_json(), "classes": json.dumps(list(c.class_names)),
                "layout": sk.layout["name"], "frames": str(c.frames), "stream": c.feats,
                "normalize": c.normalize, "input": input_shape(sk), "inputs": ",".join(c.inputs),
                "skpipe_version": c.skpipe_version}
    onnx.helper.set_model_props(proto, readable)
    return bytes(proto.SerializeToString())


def export_run(run_dir: Path, fmt: str | None = None, out: Path | None = None, force: bool = False,
               checkpoint: str = "best", tolerance: float = TOLERANCE, cache_dir: Location | None = None
               ) -> dict[str, Any]:
    """Write the run's model as `fmt` (default: the one `out`'s suffix names, else pt2) to `out`
    (default RUN/export/model.<suffix>) once the file, loaded as a user loads it and fed as a
    user feeds it, agrees with PyTorch on real clips; return the path, the card and the largest
    difference seen."""
    fmt = export_format(fmt, out)
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            raise SkpipeError("ONNX export needs the onnx extra: pip install 'skpipe[onnx,video]' "
                              "(onnx and onnxruntime; with video, so that protobuf stays below 5)") from None
    run = open_run(run_dir)
    model, ckpt = load_run_model(run, checkpoint)  # refuses a run without a checkpoint
    out = Path(out) if out is not None else run.directory / "export" / f"model{FORMATS[fmt]}"
    check_target(out, force, "export")
    batches = real_inputs(run.directory, cache_dir=cache_dir)
    sweep_stale(out)  # what a killed export of an earlier version left behind
    cards: list[ModelCard] = []

    def card(inputs: tuple[str, ...]) -> ModelCard:
        cards.append(card_of(run.config, fmt, inputs))
        return cards[-1]

    try:
        data = _export(model.float().eval(), fmt, batches[0], card)
        if fmt == "pt2" and not _dynamic_frames(data, batches[1]):
            batches = batches[:1]  # the program fixed T at the run's frames (the LSTM's), as fed
        worst = _parity(model, fmt, data, batches)
    except SkpipeError:
        raise
    except Exception as e:  # exporters raise many types for an unsupported graph
        first = str(e).splitlines()[0][:160] if str(e) else ""
        raise SkpipeError(f"{fmt} export failed: {type(e).__name__}: {first}") from None
    if not worst <= tolerance:  # NaN fails too
        raise SkpipeError(f"the {fmt} export differs from PyTorch by {worst:.2e} > {tolerance:g} on "
                          "real clips; not written")
    atomic_write_bytes(out, data, force=True)  # umask honoured; a full disk is one line
    t = run.config.train
    return {"path": out, "format": fmt, "max_abs_diff": worst, "card": cards[-1],
            "checked_batches": [tuple(x.shape) for x, _ in batches], "checkpoint": str(ckpt),
            "checked_on": ("seeded inputs (an imported run has no cache)" if run.config.imported
                           else "real clips"),
            "frames": t.frames, "feats": t.feats, "normalize": t.normalize,
            "input": input_shape(run.config.input), "bytes": len(data)}


def _dynamic_frames(data: bytes, shorter: tuple[torch.Tensor, torch.Tensor]) -> bool:
    """Whether a .pt2 program runs at other frame counts than the run's: torch.export keeps T
    symbolic where it can and fixes it where the model's code depends on it."""
    module = torch.export.load(io.BytesIO(data)).module()
    try:
        with torch.no_grad():
            module(*shorter)
    except (AssertionError, RuntimeError, ValueError) as e:
        if "Guard failed" in str(e) or "expected" in str(e).lower():
            return False
        raise
    return True


def _parity(model: torch.nn.Module, fmt: str, data: bytes, batches: list[tuple[torch.Tensor, torch.Tensor]]
            ) -> float:
    """The largest |logit| difference between PyTorch and the exported file, loaded and fed as
    a user would (`shipped.from_bytes`, the graph's own inputs); TorchScript through torch.jit."""
    if fmt == "torchscript":
        loaded = torch.jit.load(io.BytesIO(data))

        def run(x: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
            return loaded(x, lengths).numpy()
    else:
        shipped = from_bytes(fmt, data, trusted=True)  # our own bytes, just made

        def run(x: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
            return shipped.logits(x.numpy(), lengths.numpy())
    worst = 0.0
    for x, lengths in batches:
        with torch.no_grad():
            want = model(x, lengths).numpy()
            diff = float(np.abs(run(x, lengths) - want).max())
        worst = diff if not diff <= worst else worst  # NaN sticks: max() would keep the old value
    return worst


def input_shape(skeleton: Skeleton) -> str:
    """The exported model's x, in words: (B, [M,] T, V, C)."""
    persons = f"M={skeleton.persons}, " if skeleton.persons > 1 else ""
    return f"(B, {persons}T, V={skeleton.num_joints}, C={skeleton.channels}) {skeleton.layout['name']}"
