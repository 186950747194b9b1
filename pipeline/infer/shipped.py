"""A model you can ship: an exported file that says what it is, and one way to feed it.

An export (ONNX, torch.export's `.pt2`, or the deprecated TorchScript) carries a `ModelCard`
(ONNX metadata key `skpipe`; the `.pt2` / `.pt` extra file `skpipe.json`): the class names, the
skeleton it reads (layout, dims, score, persons), the cache dtype its inputs were rounded to, the
frames, stream and normalisation, the temporal clips averaged, the graph's input names and the
skpipe version. `preprocess` turns PYSKL annotations into the model's input with exactly
ingest's and the run's preprocessing, from the card alone; `ShippedModel.predict` does that, runs
the network on whichever engine holds it, and averages the clips' softmax, returning class
names and probabilities. `load` opens a run directory, a checkpoint inside one, or an export.

Nothing in a file handed over runs code: ONNX is data (a model naming external weight files is
refused), a `.pt2` is loaded only when the caller says it made it (`trusted=True`: torch.export's
loader unpickles with `weights_only=False` and parses symbolic shapes with sympy), TorchScript is
not loaded at all, checkpoints go through skpipe's own checked loader, and sizes are bounded.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import count_parameters
from models.fused import fuse
from models.layouts import Skeleton
from pipeline import MAX_CLIPS, MAX_FED_FRAMES, SkpipeError
from pipeline.files.location import read_bytes
from pipeline.infer.card import CARD_FILE, CARD_KEY, ModelCard, card_of
from pipeline.infer.feed import check_fits, model_input, read_source, window_annotation, window_starts
from pipeline.run.config import Run
from pipeline.source.raw import RawData, raw_from_object, short_repr

MAX_EXPORT_BYTES = 256 << 20  # skpipe's largest network is ~12 MB of weights; a zoo model ~50 MB
MAX_ROWS = 64  # rows (clips x temporal clips) per forward pass: the input size graphs are checked at


# --- the one feed: annotations -> the model's input --------------------------------------------

Source = str | Path | dict[str, Any] | Sequence[dict[str, Any]] | tuple[np.ndarray, np.ndarray | None]


def annotations_of(source: Source, skeleton: Skeleton) -> RawData:
    """PYSKL annotations from a pickle path (or videos, extracted into `skeleton`'s layout), one
    dict, a list of dicts, or a (keypoint (M, T, V, C), keypoint_score (M, T, V) or None for 3D)
    pair of arrays, validated as ingest does."""
    if isinstance(source, str | Path):
        return read_source(Path(source), skeleton, "this model")
    if isinstance(source, tuple) and len(source) == 2:
        kp, sc = source
        if not isinstance(kp, np.ndarray) or not (sc is None or isinstance(sc, np.ndarray)):
            raise SkpipeError("expected (keypoint, keypoint_score or None) numpy arrays")
        ann: dict[str, Any] = {"frame_dir": "clip", "label": 0, "keypoint": kp,
                               "total_frames": int(kp.shape[1]) if kp.ndim == 4 else 0}
        if sc is not None:
            ann["keypoint_score"] = sc
        if kp.ndim == 4 and kp.shape[-1] == 2 and (skeleton.score or sc is not None):
            raise SkpipeError("2D keypoints need their img_shape: pass an annotation dict with img_shape")
        return raw_from_object([ann], Path("<arrays>"), 0, "")
    if isinstance(source, dict):
        return raw_from_object([source], Path("<annotation>"), 0, "")
    if isinstance(source, Sequence) and all(isinstance(a, dict) for a in source):
        return raw_from_object(list(source), Path("<annotations>"), 0, "")
    raise SkpipeError("expected a pickle path, an annotation dict, a list of them, or (keypoint, "
                      "score) arrays")


def preprocess(source: Source, card: ModelCard, clips: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The model's input for every clip of `source`: x (N * K, [M,] frames, V, C) float32 and
    lengths (N * K,) int64, rows n * K .. n * K + K - 1 the K temporal clips of clip n (average
    their softmax). Exactly ingest's preprocessing, then the run's stream and normalisation (or,
    for an imported model, PYSKL's test pipeline)."""
    x, lengths, _ = model_input(_fitting(source, card), card, clips or card.num_clips)
    return x, lengths


def batches(source: Source, card: ModelCard, batch_size: int = 64, clips: int | None = None
            ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`preprocess`, `batch_size` clips at a time: (x (B * K, [M,] frames, V, C), lengths (B * K,))
    per batch, so that a bare engine's memory stays that of one batch however many clips."""
    if batch_size < 1:
        raise SkpipeError(f"batch_size must be >= 1, got {batch_size}")
    anns = _fitting(source, card)
    for lo in range(0, len(anns), batch_size):
        x, lengths, _ = model_input(anns[lo : lo + batch_size], card, clips or card.num_clips)
        yield x, lengths


def _fitting(source: Source, card: ModelCard) -> list[dict[str, Any]]:
    """The annotations of `source`, refused in one line unless they fit the card's skeleton."""
    raw = annotations_of(source, card.input)
    check_fits(raw, card.input, f"this {card.model} model")
    return raw.annotations


# --- the predictor -----------------------------------------------------------------------------

def top_classes(p: np.ndarray, names: Sequence[str], k: int) -> list[dict[str, Any]]:
    """The k most probable classes of one probability vector, as objects: class, probability."""
    return [{"class": names[i], "probability": float(p[i])} for i in np.argsort(-p, kind="stable")[:k]]


Fed = np.ndarray | torch.Tensor  # fed rows: arrays from annotations, tensors from the loader


def _host(a: Fed) -> np.ndarray:
    return a.cpu().numpy() if isinstance(a, torch.Tensor) else a


class ShippedModel:
    """The one predictor: a network, its card, and whichever engine holds it (PyTorch on a device,
    ONNX Runtime, a torch.export program). It owns the feed, the clips, batching and the average
    of the clips' softmax, for whole clips and for windows of frames (a ring buffer of poses)."""

    def __init__(self, card: ModelCard, engine: Any, kind: str, device: torch.device | None = None,
                 precision: str = "fp32") -> None:
        self.card, self.kind = card, kind
        self.device, self.precision = device or torch.device("cpu"), precision
        # a PyTorch network runs in its fused inference form (`models.fused`: BNs folded, 1x1
        # convs as matmuls): an ST-GCN++ as fast as its ONNX export (BENCHMARKS.md, issue 30)
        self.parameters = count_parameters(engine) if kind == "torch" else 0  # 0: ONNX, pt2 do not say
        self._engine: Any = fuse(engine) if kind == "torch" else engine

    @property
    def classes(self) -> list[str]:
        return list(self.card.class_names)

    def logits(self, x: Fed, lengths: Fed) -> np.ndarray:
        """(B, [M,] frames, V, C) float32, (B,) int64 -> (B, classes) logits, at most MAX_ROWS
        rows per forward pass (what the graph's sizes were checked at). A PyTorch engine takes
        tensors where they are (a batch built on the GPU stays there)."""
        if self.kind != "torch":
            x, lengths = _host(x), _host(lengths)
        if len(x) > MAX_ROWS:
            return np.concatenate([self.logits(x[i : i + MAX_ROWS], lengths[i : i + MAX_ROWS])
                                   for i in range(0, len(x), MAX_ROWS)])
        if self.kind == "onnx":
            feed = {"x": x, "lengths": lengths}
            try:
                z = np.asarray(self._engine.run(None, {n: feed[n] for n in self.card.inputs})[0])
            except Exception as e:  # onnxruntime raises its own types for a graph that fails
                raise SkpipeError(f"the ONNX model failed on its input ({type(e).__name__}: "
                                  f"{short_repr(str(e), 100)})") from None
        elif self.kind == "torch":
            from pipeline.run.forward import clip_logits

            z = clip_logits(self._engine, torch.as_tensor(x), torch.as_tensor(lengths), 1, self.device,
                            self.precision)[:, 0].cpu().numpy()
        else:
            with torch.no_grad():
                z = self._engine(torch.from_numpy(x), torch.from_numpy(lengths)).float().numpy()
        if z.shape != (len(x), len(self.card.class_names)):
            raise SkpipeError(f"the model returned {z.shape} logits for {len(x)} clips of "
                              f"{len(self.card.class_names)} classes: its card does not describe it")
        if not np.isfinite(z).all():
            raise SkpipeError("the model returned NaN or infinite logits (a damaged or crafted model)")
        return z

    def probabilities(self, anns: list[dict[str, Any]], clips: int | None = None) -> np.ndarray:
        """Validated annotations that fit the card -> class probabilities (N, classes)."""
        x, lengths, k = model_input(anns, self.card, clips or self.card.num_clips)  # (N * K, ...)
        return self.fed_probabilities(x, lengths, k)

    def fed_probabilities(self, x: Fed, lengths: Fed, k: int) -> np.ndarray:
        """Fed rows (N * K, [M,] frames, V, C), rows n * K .. n * K + K - 1 the K temporal clips of
        sample n -> (N, classes): the mean over the K clips of the softmax (an imported model
        whose config averages scores: the softmax of the mean logits). `evaluate` feeds the
        cache's batches here, `probabilities` annotations."""
        z = self.logits(x, lengths)
        z = z.reshape(len(z) // k, k, -1)  # (N, K, classes)
        if self.card.pyskl.get("average") == "score":
            z = z.mean(1, keepdims=True)  # (N, 1, classes)
        z = z - z.max(-1, keepdims=True)
        return (np.exp(z) / np.exp(z).sum(-1, keepdims=True)).mean(1)  # (N, classes)

    def windows(self, ann: dict[str, Any], window: int, stride: int, batch_size: int = 64
                ) -> Iterator[tuple[int, int, np.ndarray]]:
        """(first frame, last frame, probabilities) of each window of `window` frames every
        `stride` frames over the whole clip (not cut at the cache's 300), `batch_size` windows
        at a time: memory does not grow with the clip's length."""
        total = int(np.asarray(ann["keypoint"]).shape[1])
        starts = window_starts(total, window, stride)
        for lo in range(0, len(starts), batch_size):
            some = starts[lo : lo + batch_size]
            parts = [window_annotation(ann, s, window) for s in some]
            for s, part, p in zip(some, parts, self.probabilities(parts, 1), strict=True):
                yield s, s + part["total_frames"] - 1, p

    def check_options(self, top: int, clips: int | None, batch_size: int, window: int | None,
                      stride: int | None) -> None:
        """The one check of the options every prediction takes."""
        k = clips or self.card.num_clips
        if top < 1 or batch_size < 1 or not 1 <= k <= MAX_CLIPS:
            raise SkpipeError(f"top and batch_size must be >= 1 and clips in 1..{MAX_CLIPS}, got {top}, "
                              f"{batch_size} and {k}")
        if window is not None and not 1 <= window <= self.card.frames and not self.card.pyskl:
            raise SkpipeError(f"--window must be in 1..{self.card.frames} (the model's frames), got {window}")
        if window is not None and not 1 <= window <= MAX_FED_FRAMES:
            raise SkpipeError(f"--window must be in 1..{MAX_FED_FRAMES:,}, got {window}")
        if stride is not None and stride < 1:
            raise SkpipeError(f"--stride must be >= 1, got {stride}")
        if stride is not None and window is None:
            raise SkpipeError("--stride needs --window (the frames each label covers)")

    def iter_predict(self, source: Source | RawData, top: int = 5, clips: int | None = None,
                     batch_size: int = 64, window: int | None = None, stride: int | None = None
                     ) -> Iterator[dict[str, Any]]:
        """For every clip of `source`, as soon as its batch is done: its frame_dir, the top
        classes ({"class", "probability"}) and, with `window`, those of each window of `window`
        frames every `stride` (default a quarter window) frames along it."""
        self.check_options(top, clips, batch_size, window, stride)
        raw = source if isinstance(source, RawData) else annotations_of(source, self.card.input)
        check_fits(raw, self.card.input, f"this {self.card.model} model")
        for lo in range(0, len(raw.annotations), batch_size):
            anns = raw.annotations[lo : lo + batch_size]
            yield from self.results(anns, self.probabilities(anns, clips), top, window, stride, batch_size)

    def results(self, anns: list[dict[str, Any]], probs: np.ndarray, top: int, window: int | None,
                stride: int | None, batch_size: int = 64) -> Iterator[dict[str, Any]]:
        """Each annotation's result from its probabilities (N, classes): frame_dir, top classes
        and, with `window`, each window's (which runs the model on the windows)."""
        names = self.card.class_names
        for a, p in zip(anns, probs, strict=True):
            result: dict[str, Any] = {"frame_dir": a["frame_dir"], "top": top_classes(p, names, top)}
            if window is not None:
                result["windows"] = [{"start": s, "end": e, "top": top_classes(q, names, top)}
                                     for s, e, q in self.windows(a, window, stride or max(1, window // 4),
                                                                 batch_size)]
            yield result

    def predict(self, source: Source, top: int = 5, clips: int | None = None, batch_size: int = 64,
                window: int | None = None, stride: int | None = None) -> list[dict[str, Any]]:
        """`iter_predict` as a list."""
        return list(self.iter_predict(source, top, clips, batch_size, window, stride))


MAX_TENSOR_ELEMENTS = 1 << 28  # 1 GiB of float32: far above any tensor of skpipe's own graphs


# every op of skpipe's own exports (lstm, stgcn, stgcnpp, pyskl_stgcn, imported models): a graph
# handed over may use these only, in the default domain, with no subgraph (If, Loop, Scan)
ONNX_OPS = frozenset({
    "Add", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "Div",
    "Einsum", "Equal", "Expand", "Flatten", "Gather", "GatherElements", "Gemm", "Identity", "LSTM", "Less",
    "MatMul", "MaxPool", "Mul", "Range", "ReduceMean", "Relu", "Reshape", "Shape", "Slice", "Softmax",
    "Split", "Squeeze", "Sub", "Transpose", "Unsqueeze", "Where"})
# inputs that decide how large an output is: never computed from the input's values (a Range or
# a ConstantOfShape driven by `lengths` could ask for any amount of memory)
SIZE_INPUTS = {"Range": (0, 1, 2), "ConstantOfShape": (0,), "Expand": (1,)}
MAX_METADATA_BYTES = 8 << 20


def _check_onnx(data: bytes, where: str) -> Any:
    """The model's proto, refused unless it is the kind of graph skpipe exports: every tensor in
    the file (no external data: onnxruntime would read whatever path it names, in any branch or
    sparse form), no control flow, only skpipe's ops, no output sized by the input's values, and
    bounded metadata."""
    import onnx

    try:
        proto = onnx.load_model_from_string(data)
    except Exception:
        raise SkpipeError(f"{where}: not an ONNX model") from None
    if sum(len(p.key) + len(p.value) for p in proto.metadata_props) > MAX_METADATA_BYTES:
        raise SkpipeError(f"{where}: refused: its metadata is larger than any model card")
    g = proto.graph
    if len(g.sparse_initializer) or any(n.op_type == "Constant" and any(
            a.name == "sparse_value" for a in n.attribute) for n in g.node):
        raise SkpipeError(f"{where}: refused: sparse tensors are not in any skpipe model")
    tensors = [*g.initializer, *(a.t for n in g.node for a in n.attribute if a.HasField("t"))]
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors):
        raise SkpipeError(f"{where}: refused: its weights name external files (skpipe writes one file)")
    for n in g.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute):
            raise SkpipeError(f"{where}: refused: control flow ({n.op_type}) is not in any skpipe model")
        if n.domain not in ("", "ai.onnx") or n.op_type not in ONNX_OPS:
            raise SkpipeError(f"{where}: refused: op {short_repr(n.op_type)} is not in any skpipe model")
    _check_value_sizes(g, where)
    return proto


def _check_value_sizes(g: Any, where: str) -> None:
    """Refuse an output whose size is computed from the input's values: follow which tensors
    derive from a graph input's values (a Shape's output derives from its shape only)."""
    derived = {i.name for i in g.input} - {t.name for t in g.initializer}
    for n in g.node:  # ONNX nodes are in topological order
        if n.op_type != "Shape" and any(i in derived for i in n.input):
            derived.update(n.output)
        for k in SIZE_INPUTS.get(n.op_type, ()):
            if k < len(n.input) and n.input[k] in derived:
                raise SkpipeError(f"{where}: refused: {n.op_type} sized by the input's values (it could "
                                  "ask for any amount of memory)")


def _check_sizes(proto: Any, card: ModelCard, batch: int, where: str) -> None:
    """Refuse a graph any of whose tensors, at the largest input skpipe feeds it (`batch` rows
    of the card's shape), would hold more than MAX_TENSOR_ELEMENTS (a ConstantOfShape or Expand
    bomb). Sizes that depend on the input's values, not its shape, stay unknown and unchecked."""
    import onnx
    from onnx import shape_inference

    sk = card.input
    persons = (sk.persons,) if sk.persons > 1 else ()
    x_shape = (batch, *persons, card.frames, sk.num_joints, sk.channels)
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    for i in m.graph.input:
        dims = i.type.tensor_type.shape.dim
        for d, v in zip(dims, x_shape if i.name == "x" else (batch,), strict=False):
            d.ClearField("dim_param")
            d.dim_value = v
    try:
        inferred = shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception:
        raise SkpipeError(f"{where}: refused: its shapes cannot be worked out for skpipe's input") from None
    for vi in [*inferred.graph.value_info, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            size = 1
            for d in dims:
                size *= max(0, d.dim_value)
            if size > MAX_TENSOR_ELEMENTS:
                raise SkpipeError(f"{where}: refused: tensor {short_repr(vi.name)} would hold {size:,} "
                                  "elements (more than any skeleton model needs)")


def from_bytes(fmt: str, data: bytes, where: str = "the export", trusted: bool = False) -> ShippedModel:
    """An exported model from its file's bytes (ONNX, or a .pt2 you made), its card read and
    checked. A `.pt2` is loaded only when `trusted`: torch.export's loader unpickles and
    evaluates what the archive holds, so a stranger's program could run code."""
    if fmt == "onnx":
        import onnxruntime

        proto = _check_onnx(data, where)
        meta = {p.key: p.value for p in proto.metadata_props}
        if CARD_KEY not in meta:
            raise SkpipeError(f"{where}: an ONNX model without a skpipe card (export it with skpipe 0.2+)")
        card = ModelCard.from_json(meta[CARD_KEY])
        _check_sizes(proto, card, MAX_ROWS, where)
        try:
            session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise SkpipeError(f"{where}: not a loadable ONNX model ({type(e).__name__})") from None
        return ShippedModel(card, session, "onnx")
    if fmt == "pt2":
        if not trusted:
            raise SkpipeError(f"{where}: a .pt2 program can run code when loaded (torch.export unpickles "
                              "and evaluates it); load only one you made, with trusted=True, or ship ONNX")
        extra = {CARD_FILE: ""}
        try:
            program = torch.export.load(io.BytesIO(data), extra_files=extra)
        except Exception as e:
            raise SkpipeError(f"{where}: not a loadable torch.export program ({type(e).__name__})") from None
        if not extra[CARD_FILE]:
            raise SkpipeError(f"{where}: a .pt2 program without a skpipe card")
        return ShippedModel(ModelCard.from_json(extra[CARD_FILE]), program.module(), "pt2")
    raise SkpipeError(f"{where}: {fmt} files are not loaded (TorchScript is deprecated: export --format pt2)")


def run_model(run: Run, checkpoint: str = "best", device: str = "cpu", precision: str = "fp32"
              ) -> tuple[ShippedModel, Path]:
    """A run's network (`checkpoint`: best, last or a .pt path) ready to predict on `device`, and
    the checkpoint it came from: the one place a checkpoint becomes a predictor. `precision` is
    fp32 unless bf16 is asked (and native), whatever the run trained in."""
    from pipeline.infer.inference import load_run_model
    from pipeline.run.runtime import inference_precision, resolve_device

    dev = resolve_device(device)
    chosen = inference_precision(precision, dev)  # refused before the checkpoint is read
    model, ckpt = load_run_model(run, checkpoint)
    shipped = ShippedModel(card_of(run.config, "run", ("x", "lengths")), model.float().eval().to(dev),
                           "torch", dev, chosen)
    return shipped, ckpt


def load(path: str | Path, checkpoint: str = "best", trusted: bool = False, device: str = "cpu",
         precision: str = "fp32") -> ShippedModel:
    """A run directory (trained or imported), a checkpoint inside one, a `.onnx` or (`trusted`)
    a `.pt2` export, ready to predict; a run's network on `device`, in fp32 unless `precision`
    asks for bf16 (ONNX and pt2 files run as they were exported)."""
    from pipeline.run.config import is_run, open_run

    path = Path(path)
    if path.is_dir():
        return run_model(open_run(path), checkpoint, device, precision)[0]
    suffix = path.suffix.lower()
    if suffix in (".onnx", ".pt2"):
        if not path.is_file():
            raise SkpipeError(f"{path}: no such file")
        return from_bytes(suffix[1:], read_bytes(path, MAX_EXPORT_BYTES), str(path), trusted)
    if suffix == ".pt" and is_run(path.parent.parent):  # RUN/checkpoints/NAME.pt
        return run_model(open_run(path.parent.parent), str(path), device, precision)[0]
    raise SkpipeError(f"{path}: expected a run directory, a checkpoint inside one, a .onnx or a .pt2 "
                      "(a checkpoint alone names no classes)")
