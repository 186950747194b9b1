"""A run directory and its config.json: created, opened and resumed here, and nowhere else.

`RunConfig` is the typed contract of config.json: the train options as they ran, the cache it
was trained on (resolved location and manifest hash), the model's arguments, class names, and
the environment. Light on purpose (json, pathlib, dataclasses): `compare` reads runs without
importing torch. Checkpoints are `pipeline.run.checkpoint`'s; metrics and TensorBoard
`pipeline.run.metrics` and `pipeline.run.runlog`'s.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.layouts import Skeleton
from pipeline import SkpipeError
from pipeline.files.atomic import atomic_write_text
from pipeline.files.location import MAX_JSON_BYTES, read_bytes
from pipeline.inputs.features import InputSpec
from pipeline.run.options import RENAMED, TrainConfig

if TYPE_CHECKING:
    from pipeline.data.cache import Cache
    from pipeline.files.location import Location

CONFIG_NAME = "config.json"
CHECKPOINT_NAMES = ("best", "last")  # best: by val accuracy; last: every epoch (what --resume reads)
MAX_CLASSES = 100_000  # what a run or checkpoint may ask to allocate (the largest set has ~1,000)
REPORT_NAME = "report.json"  # an evaluation's summary: its contract is pipeline.infer.report


def checkpoint_file(run_dir: Path, name: str) -> Path:
    """RUN/checkpoints/NAME.pt: best, last, epoch_NNN."""
    return Path(run_dir) / "checkpoints" / f"{name}.pt"


def eval_dir(run_dir: Path, subset: str) -> Path:
    return Path(run_dir) / "eval" / subset


def curves_file(run_dir: Path) -> Path:
    return Path(run_dir) / "curves.png"


def tensorboard_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "tb"


@dataclass(frozen=True)
class ModelArgs:
    """What `models.build_model` needs; also stored in every checkpoint, so one copied out of
    its run directory still loads."""

    name: str
    num_classes: int
    dropout: float = 0.5
    skeleton: dict[str, Any] = field(default_factory=dict)  # Skeleton.to_dict(); {}: the seed's
    arch: dict[str, Any] = field(default_factory=dict)  # the architecture ({}: the model's default)

    @property
    def input(self) -> Skeleton:
        return Skeleton.from_dict(self.skeleton)

    def check_arch(self) -> None:
        """Refuse an architecture the model does not take or that is malformed (ValueError)."""
        from models import MODELS

        if not isinstance(self.arch, dict):
            raise ValueError("arch is not a table")
        if self.arch and not MODELS[self.name].arch:
            raise ValueError(f"{self.name} takes no architecture")
        if self.arch:
            from models.stgcnpp import GCNArch

            GCNArch.from_dict(self.arch)


@dataclass(frozen=True)
class RunConfig:
    train: TrainConfig  # the options as they ran (epochs and threads resolved)
    cache: str  # the cache, resolved when the run started: a resume works from any directory
    manifest_hash: str
    num_classes: int
    class_names: tuple[str, ...]
    cache_dtype: str = "float16"
    parameters: int = 0
    loader_mode: str = ""
    device: str = "cpu"
    world_size: int = 1
    effective_batch_size: int = 0
    effective_lr: float = 0.0
    train_samples: int = 0
    val_samples: int = 0
    allocator: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    skeleton: dict[str, Any] = field(default_factory=dict)  # the cache's (Skeleton.to_dict); {}: the seed's
    arch: dict[str, Any] = field(default_factory=dict)  # the model's architecture; {}: its default
    pyskl: dict[str, Any] = field(default_factory=dict)  # an imported model's test pipeline; {}: skpipe's
    source: dict[str, Any] = field(default_factory=dict)  # where the weights came from (import, --init)

    def __post_init__(self) -> None:
        if self.train.cache != self.cache:  # one cache: the resolved one
            object.__setattr__(self, "train", replace(self.train, cache=self.cache))

    @property
    def model_args(self) -> ModelArgs:
        return ModelArgs(self.train.model, self.num_classes, self.train.dropout, self.skeleton, self.arch)

    @property
    def imported(self) -> bool:
        """A model imported from PYSKL / MMAction2: fed by PYSKL's test pipeline, no cache."""
        return bool(self.pyskl)

    def pipeline(self) -> Any:
        """An imported model's `PysklPipeline` (None for a model skpipe trained)."""
        from pipeline.inputs.pyskl import PysklPipeline

        return PysklPipeline.from_dict(self.pyskl) if self.pyskl else None

    @property
    def input(self) -> Skeleton:
        """What the run's model reads: layout, dims, score, persons."""
        return Skeleton.from_dict(self.skeleton)

    def input_spec(self) -> InputSpec:
        """How evaluation and prediction feed the model: no augmentation."""
        return self.train.input_spec(train=False, skeleton=self.input)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def check(self) -> None:
        """The fields later stages allocate or open from, of the types they need."""
        if not isinstance(self.cache, str) or not isinstance(self.manifest_hash, str):
            raise ValueError("cache and manifest_hash must be strings")
        n = self.num_classes
        if (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CLASSES
                or len(self.class_names) != n):
            raise SkpipeError(f"num_classes {n!r} does not match its {len(self.class_names)} class names")
        if not all(isinstance(c, str) for c in self.class_names):
            raise ValueError("class names must be strings")
        self.input  # noqa: B018 - refuses a malformed skeleton
        self.model_args.check_arch()
        if not all(isinstance(d, dict) for d in (self.pyskl, self.source)):
            raise ValueError("pyskl and source must be tables")
        self.pipeline()

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        """Parse config.json; fields missing from older skpipe versions take their defaults."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("train"), dict):
            raise ValueError("no train options")
        known = {f.name for f in fields(cls)}
        train = TrainConfig(**{RENAMED.get(k, k): v for k, v in data["train"].items()})
        return cls(**{"cache": train.cache, **{k: v for k, v in data.items() if k in known},
                      "train": train, "class_names": tuple(data["class_names"])})


@dataclass(frozen=True)
class Run:
    """A training run directory: its config and the names of its files."""

    directory: Path
    config: RunConfig

    @property
    def model(self) -> str:
        return self.config.train.model

    @property
    def split(self) -> str:
        return self.config.train.split

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    def checkpoint(self, name: str) -> Path:
        """`best` / `last` in the run's checkpoints, or any path."""
        return checkpoint_file(self.directory, name) if name in CHECKPOINT_NAMES else Path(name)

    def report(self, subset: str, checkpoint: str = "best", clips: int | None = None) -> Path:
        return self.eval_dir(subset, checkpoint, clips) / REPORT_NAME

    def eval_dir(self, subset: str, checkpoint: str = "best", clips: int | None = None) -> Path:
        """Where an evaluation of `subset` is kept: eval/<subset> with the run's defaults (best,
        its --clips), else beside it under a name that says what differs (eval/test-last-clips10),
        so evaluations with other settings never overwrite one another."""
        parts = [subset]
        if checkpoint != "best":
            parts.append(Path(checkpoint).stem)
        if clips is not None and clips != self.config.train.num_clips:
            parts.append(f"clips{clips}")
        return eval_dir(self.directory, "-".join(parts))

    def open_cache(self, cache_dir: Location | None = None) -> Cache:
        """The run's cache (or `cache_dir`), refused if it was rebuilt since the run."""
        from pipeline.data.cache import open_cache

        if self.config.imported:
            origin = self.config.source.get("origin", "PYSKL")
            raise SkpipeError(f"{self.directory} is a model imported from {origin} and has no cache of its "
                              "own: evaluate it with --cache DIR (ensembles of imported runs are not "
                              "implemented yet)")
        cache = open_cache(cache_dir or self.config.cache)
        if not cache.built_as(self.config.manifest_hash):
            if cache_dir is not None and str(cache_dir) != self.config.cache:
                raise SkpipeError(f"{cache.directory} is another cache than the one {self.directory} was "
                                  f"trained on ({self.config.cache}; manifest hash differs)")
            raise SkpipeError(f"the cache at {cache.directory} changed since {self.directory} was "
                              "trained (rebuilt: manifest hash differs); use the cache it was trained on")
        return cache


def is_run(d: Path) -> bool:
    """Whether `d` holds a run's config (what `open_run` reads)."""
    return (Path(d) / CONFIG_NAME).is_file()


def open_run(run_dir: Path) -> Run:
    """The run in `run_dir`, its config.json parsed and validated (one line if it is not)."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_NAME
    if not path.exists():
        raise SkpipeError(f"{run_dir} is not a skpipe run ({CONFIG_NAME} missing)")
    try:
        config = RunConfig.from_json(read_bytes(path, MAX_JSON_BYTES).decode("utf-8", errors="replace"))
        config.check()
    except SkpipeError as e:
        raise SkpipeError(f"{path}: {e}") from None
    except (ValueError, TypeError, KeyError, OSError, RecursionError, AttributeError):
        raise SkpipeError(f"{path}: malformed run config") from None
    return Run(run_dir, config)


def run_name(dataset: str, model: str, feats: str, split: str) -> str:
    """`DATASET-MODEL-STREAM-SPLIT`: what tells two runs apart in a listing of runs/."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.]", "_", text)[:40]

    name = f"split{split}" if split.isdigit() else safe(split)
    return "-".join(p for p in (safe(dataset), model, feats, name) if p)


def create_run(out: str | Path, name: str) -> Path:
    """A new, empty run directory `OUT/NAME-STAMP` (suffixed when the name is taken)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(out) / f"{name}-{stamp}"
    run, n = base, 1
    while run.exists():
        n += 1
        run = base.with_name(f"{base.name}-{n}")
    try:
        (run / "checkpoints").mkdir(parents=True)
    except OSError as e:
        raise SkpipeError(f"cannot create the run directory {run}: {e.strerror or e}") from None
    return run


def write_config(run_dir: Path, config: RunConfig) -> None:
    atomic_write_text(Path(run_dir) / CONFIG_NAME, config.to_json())
