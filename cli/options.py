"""Options shared by several commands, each declared once, with its choices taken from the
library's own constants (never a literal list here)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from models import MODELS
from pipeline import MAX_CLIPS
from pipeline.data.protocols import SUBSETS
from pipeline.run.config import CHECKPOINT_NAMES
from pipeline.run.options import DEVICES
from pipeline.run.runtime import INFERENCE_PRECISIONS
from pipeline.source.pose import CONFIDENCE, MAX_PERSONS

F = TypeVar("F", bound=Callable[..., Any])


class Finite(click.FloatRange):
    """A float option that refuses nan and inf in one line: click's FLOAT and FloatRange let both
    through (nan compares false with every bound), and they end in tracebacks downstream."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return v


FINITE = Finite()

cache_option = click.option(
    "--cache", "cache_dir", default="cache", show_default=True, envvar="SKPIPE_CACHE",
    show_envvar=True, help="Cache directory, or for reading commands any fsspec URL (file://, s3://, ...).",
)

run_cache_option = click.option(
    "--cache", "cache_dir", default=None,
    help="The run's cache (path or URL) if it moved since training; it must be the same build.")

run_dir_argument = click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))

run_dirs_argument = click.argument("run_dirs", nargs=-1, required=True,
                                   type=click.Path(file_okay=False, path_type=Path))

model_argument = click.argument("model", type=click.Choice(list(MODELS)), required=False)

checkpoint_option = click.option("--checkpoint", default="best", show_default=True,
                                 help=f"{' or '.join(CHECKPOINT_NAMES)} of the run, or a .pt path.")

clips_option = click.option("--clips", type=click.IntRange(1, MAX_CLIPS),
                            help="Average softmax over K fixed temporal clips (default: the run's "
                                 "--clips).")

train_clips_option = click.option("--clips", "--test-clips", "num_clips", type=click.IntRange(1, MAX_CLIPS),
                                  help="Temporal clips `evaluate` averages by default (1).")

frame_dir_option = click.option("--frame-dir", "--clip", "frame_dir",
                                help="The clip to draw, by its frame_dir (default: the only or first one).")

def confidence_options(fn: F) -> F:
    """--min-detection / --min-tracking: the pose backend's minimum confidences (extract, live)."""
    unit = Finite(0, 1)
    fn = click.option("--min-tracking", type=unit, default=CONFIDENCE[1], show_default=True,
                      help="MediaPipe's minimum tracking confidence.")(fn)
    return click.option("--min-detection", type=unit, default=CONFIDENCE[0], show_default=True,
                        help="MediaPipe's minimum detection confidence (lower finds more small or blurred "
                             "people and hands).")(fn)


def persons_option(default: int | None) -> Callable[[F], F]:
    """--persons: above 1, every person is detected and tracked (extract: default 1; live: the
    model's persons)."""
    return click.option(
        "--persons", type=click.IntRange(1, MAX_PERSONS), default=default, show_default=default is not None,
        help="Persons kept: above 1, every person is detected and tracked (BlazePose under LiteRT, in the "
             "video extra) and the ones of the highest total score are kept, as PYSKL does"
             + ("." if default is not None else "; default: as many as the run reads."))

threads_option = click.option("--threads", type=click.IntRange(min=1),
                              help="Torch threads (default: one per core that no other process is using).")


def device_option(default: str | None) -> Callable[[F], F]:
    """--device: `auto` picks CUDA when present. Inference defaults to the CPU, training to auto."""
    return click.option("--device", type=click.Choice(list(DEVICES)), default=default,
                        show_default=default is not None,
                        help="auto: CUDA when present." if default else "Default auto (CUDA when present).")


inference_precision_option = click.option(
    "--precision", type=click.Choice(INFERENCE_PRECISIONS), default=INFERENCE_PRECISIONS[0],
    show_default=True,
    help="fp32 gives the same probabilities on every CPU and engine, whatever the run trained in; bf16 "
         "(where the CPU or GPU has it natively) is faster and differs in the 3rd-4th decimal.")


def subset_option(default: str = "test") -> Callable[[F], F]:
    return click.option("--subset", type=click.Choice(list(SUBSETS)), default=default, show_default=True,
                        help="Which subset of the run's protocol.")


def force_option(what: str) -> Callable[[F], F]:
    return click.option("--force", is_flag=True, help=f"Replace {what}.")
