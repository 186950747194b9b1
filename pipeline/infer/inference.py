"""A model from a checkpoint's own arguments, and batches prefetched while the model runs.

Each sample is tested on K fixed temporal clips folded into the batch dimension, as PYSKL does
(input (B * K, T, V, C), the K clips of a sample adjacent): one forward pass per batch, and the
sample's probabilities are the mean of its K softmax outputs (`pipeline.infer.shipped`, the one
predictor `evaluate`, `ensemble`, `predict`, `live` and the API use). Every forward pass, train's
validation included, is `pipeline.run.forward.clip_logits`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from models import build_model
from pipeline import SkpipeError
from pipeline.run.checkpoint import load_checkpoint
from pipeline.run.config import ModelArgs, Run

T = TypeVar("T")


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """`items`, computed up to `depth` ahead in a background thread: a batch is read and
    preprocessed (numpy, which releases the GIL) while the model runs on the one before. Memory
    stays bounded by `depth` batches; an exception in the thread is raised here, in order."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        """Hand over `entry`; False once the consumer has stopped (the thread then ends)."""
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as e:  # handed to the consumer, raised there
            put(("error", e))

    thread = threading.Thread(target=work, daemon=True, name="skpipe-prefetch")
    thread.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()  # the consumer stopped early (closed pipe, Ctrl-C): the thread ends too


def load_model(path: Path, expect: ModelArgs | None = None) -> tuple[nn.Module, ModelArgs]:
    """The network in checkpoint `path`, in eval mode on the CPU, built from the checkpoint's own
    (checked) arguments; refused before anything is built when `expect` (the run's) names another
    model or class count, or when its weights hold non-finite values."""
    ckpt = load_checkpoint(path)
    args = ckpt.args
    if expect is not None and (args.name, args.num_classes) != (expect.name, expect.num_classes):
        raise SkpipeError(f"{path} holds a {args.name} model of {args.num_classes} classes; the run "
                          f"is {expect.name} with {expect.num_classes}")
    ckpt.check_finite(path)
    model = build_model(args.name, args.num_classes, args.dropout, args.input, args.arch)
    try:
        model.load_state_dict(ckpt.weights)
    except (RuntimeError, TypeError, AttributeError):
        raise SkpipeError(f"{path}: its weights do not fit a {args.name} model of "
                          f"{args.num_classes} classes") from None
    return model.eval(), args


def checkpoint_path(run: Run, checkpoint: str) -> Path:
    path = run.checkpoint(checkpoint)
    if not path.exists():
        raise SkpipeError(f"{run.directory}: no checkpoint {checkpoint!r} ({path} missing); "
                          "was the run trained for at least one epoch?")
    return path


def load_run_model(run: Run, checkpoint: str = "best") -> tuple[nn.Module, Path]:
    """The run's `best` / `last` (or any path) checkpoint, checked against the run's model."""
    path = checkpoint_path(run, checkpoint)
    model, _ = load_model(path, run.config.model_args)
    return model, path

