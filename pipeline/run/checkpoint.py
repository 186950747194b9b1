"""A checkpoint (`RUN/checkpoints/*.pt`): written and read here, and nowhere else.

`Checkpoint` is the typed contract: the model's arguments and weights (enough to load it out of
its run), and for a resume the optimizer, scheduler, RNG and `TrainState`. On disk it stays the
dict skpipe 0.1 wrote (`model`, `model_name`, `num_classes`, `model_args`, `optimizer`,
`scheduler`, `torch_rng`, `state`, `manifest_hash`, `config`), loaded with `weights_only=True` so
that a `.pt` someone hands over can never run code. Every value is checked before it is used:
the model's arguments before a network is built from them, the weights for non-finite values.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline import SkpipeError
from pipeline.files.atomic import atomic_file
from pipeline.run.config import MAX_CLASSES, ModelArgs

MAX_CHECKPOINT_BYTES = 512 << 20  # on disk and inflated: 40x PoseC3D's, the zoo's largest skeleton model


@dataclass(frozen=True)
class TrainState:
    """Where training stands after `epoch`: what `--resume` continues from."""

    epoch: int = 0
    best_val_acc: float = -1.0
    best_epoch: int = 0
    stale: int = 0  # epochs since the best val accuracy (early stop)

    @classmethod
    def from_dict(cls, data: Any) -> TrainState:
        if not isinstance(data, dict):
            raise ValueError("state is not a dict")
        s = cls(**data)
        ints = (s.epoch, s.best_epoch, s.stale)
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**7 for v in ints):
            raise ValueError("state holds a bad epoch count")
        if not isinstance(s.best_val_acc, int | float):
            raise ValueError("state holds a bad accuracy")
        return s


@dataclass(frozen=True)
class Checkpoint:
    args: ModelArgs
    weights: dict[str, torch.Tensor]
    state: TrainState = field(default_factory=TrainState)
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    rng: torch.Tensor | list[torch.Tensor] | None = None  # one state per rank when distributed
    manifest_hash: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # the train options, for the record
    has_state: bool = True  # the file said which epoch it holds (a resume needs it)

    @classmethod
    def of(cls, net: nn.Module, args: ModelArgs, **rest: Any) -> Checkpoint:
        return cls(args, net.state_dict(), **rest)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.weights, "model_name": self.args.name, "num_classes": self.args.num_classes,
                "model_args": asdict(self.args), "optimizer": self.optimizer, "scheduler": self.scheduler,
                "torch_rng": self.rng, "state": asdict(self.state), "manifest_hash": self.manifest_hash,
                "config": self.config}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        """Raises ValueError / TypeError / KeyError for anything that is not a checkpoint's."""
        weights = data["model"]
        if not isinstance(weights, dict) or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
            raise ValueError("its weights are not a dict of tensors")
        state = data.get("state")
        return cls(args=_model_args(data), weights=weights,
                   state=TrainState.from_dict(state) if state is not None else TrainState(),
                   optimizer=data.get("optimizer"), scheduler=data.get("scheduler"),
                   rng=data.get("torch_rng"), manifest_hash=str(data.get("manifest_hash", "")),
                   config=data["config"] if isinstance(data.get("config"), dict) else {},
                   has_state=isinstance(state, dict) and "epoch" in state)

    def check_finite(self, path: Path) -> None:
        """Refuse weights holding NaN or infinity: they would give reports of chance-level
        accuracy, `NaN` in JSON and exports whose parity check cannot fail. Views larger than
        their storage are refused first, before any value is read."""
        check_tensors({k: v for k, v in self.weights.items() if v.is_floating_point()}, path, finite=False)
        bad = [k for k, v in self.weights.items()
               if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise SkpipeError(f"{path}: its weights hold NaN or infinite values ({len(bad)} tensors, "
                              f"first {bad[0]!r}); the run diverged or the file was damaged")

    def check_resumable(self, path: Path) -> None:
        """Refuse a checkpoint that lacks what a resume restores (optimizer, scheduler, RNG, the
        training state: an empty one would retrain epoch 1 over trained weights)."""
        if not self.has_state:
            raise SkpipeError(f"{path}: cannot resume from it (no training state: which epoch it holds)")
        size = torch.get_rng_state().numel()
        rngs = self.rng if isinstance(self.rng, list) else [self.rng]
        ok_rng = bool(rngs) and all(isinstance(r, torch.Tensor) and r.dtype == torch.uint8
                                    and r.numel() == size for r in rngs)
        if not isinstance(self.optimizer, dict) or not {"state", "param_groups"} <= set(self.optimizer):
            raise SkpipeError(f"{path}: cannot resume from it (no optimizer state)")
        if not isinstance(self.scheduler, dict) or not ok_rng:
            raise SkpipeError(f"{path}: cannot resume from it (no scheduler or RNG state)")

    def rank_rng(self, rank: int) -> torch.Tensor:
        """This rank's RNG state; a resume with other ranks reuses the saved ones in turn."""
        rng = self.rng
        if isinstance(rng, list):
            return rng[rank % len(rng)]
        assert rng is not None
        return rng


def _model_args(data: dict[str, Any]) -> ModelArgs:
    """The model a checkpoint holds, checked before anything is built from it (skpipe 0.1 stored
    no `model_args`: its name, class count and config say the same)."""
    from models import MODELS

    raw = data.get("model_args")
    if isinstance(raw, dict):
        args = ModelArgs(**raw)
    else:
        config = data.get("config")
        dropout = config.get("dropout", 0.5) if isinstance(config, dict) else 0.5
        args = ModelArgs(data["model_name"], data["num_classes"], dropout)
    if args.name not in MODELS:
        raise ValueError(f"unknown model {args.name!r}")
    n = args.num_classes
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CLASSES:
        raise ValueError(f"class count {n!r} out of range")
    if not isinstance(args.dropout, int | float) or not 0 <= args.dropout < 1:
        raise ValueError(f"dropout {args.dropout!r} out of range")
    args.input  # noqa: B018 - refuses a malformed skeleton (LayoutError is a ValueError)
    args.check_arch()
    return args


def check_tensors(weights: dict[str, torch.Tensor], where: Path | str, finite: bool = True) -> None:
    """Refuse tensors whose views claim more than their storage holds (a 10^12-element view of
    one float) before any value is read, then non-finite values."""
    for key, t in weights.items():
        if t.layout != torch.strided or t.is_quantized:
            raise SkpipeError(f"{where}: tensor {key[:80]!r} is not a plain dense tensor")
        storage = t.untyped_storage().nbytes()
        needed = (t.storage_offset() + 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True)
                                               if n > 0)) * t.element_size() if t.numel() else 0
        if needed > storage or any(s == 0 for n, s in zip(t.shape, t.stride(), strict=True) if n > 1):
            raise SkpipeError(f"{where}: tensor {key[:80]!r} of shape {tuple(t.shape)} is a view "
                              f"larger than its {storage:,}-byte storage (damaged or crafted)")
        if finite and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise SkpipeError(f"{where}: tensor {key[:80]!r} holds NaN or infinite values")


def save_checkpoint(ckpt: Checkpoint, path: Path) -> None:
    """torch.save through a temporary sibling: a full disk leaves the previous checkpoint intact
    and no temporary behind."""
    try:
        with atomic_file(path, make_parent=False) as tmp:
            torch.save(ckpt.to_dict(), tmp)
    except RuntimeError as e:  # torch reports a full disk as RuntimeError
        raise SkpipeError(f"cannot write {path}: {str(e).splitlines()[0][:120]} (the previous "
                          "checkpoint is unchanged)") from None


def load_weights_only(path: Path, max_bytes: int = MAX_CHECKPOINT_BYTES) -> Any:
    """Any .pt / .pth file (skpipe's, PYSKL's, MMAction2's) loaded with `weights_only=True`:
    tensors, numbers, strings and plain containers, never code; bounded in size."""
    path = Path(path)
    if not path.is_file():
        raise SkpipeError(f"no checkpoint at {path}")
    if path.stat().st_size > max_bytes:
        raise SkpipeError(f"{path}: larger than any skeleton model ({max_bytes >> 20:,} MB)")
    _check_archive(path, max_bytes)
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols; we refuse instead
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise SkpipeError(f"{path}: refused: the checkpoint holds objects other than tensors, numbers, "
                          "strings and plain containers (weights only: it could run code)") from None
    except Exception as e:  # torch raises many types for a damaged file
        raise SkpipeError(f"{path}: unreadable checkpoint ({type(e).__name__})") from None


def _check_archive(path: Path, max_bytes: int) -> None:
    """What torch would inflate, read from the zip's directory before anything is inflated: a 4 MB
    file can declare 4 GB of zeros. The pre-1.6 format is refused: it allocates each storage at
    the size its pickle declares, which nothing can check beforehand."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile:
        raise SkpipeError(f"{path}: refused: not a PyTorch checkpoint in the zip format torch.save "
                          "has written since 1.6 (an .onnx file is read by predict / skpipe.load, not "
                          "imported; an older .pth must be re-saved with a current torch)") from None
    except (OSError, ValueError, RuntimeError) as e:
        raise SkpipeError(f"{path}: unreadable checkpoint ({type(e).__name__})") from None
    names = [e.filename for e in entries]
    inflated = sum(e.file_size for e in entries)
    if len(set(names)) != len(names):
        raise SkpipeError(f"{path}: refused: its archive names one record twice (damaged or crafted)")
    if inflated > max_bytes:
        raise SkpipeError(f"{path}: refused: its records inflate to {inflated:,} bytes, more than any "
                          f"skeleton model ({max_bytes >> 20:,} MB)")


def load_checkpoint(path: Path) -> Checkpoint:
    """A checkpoint from a regular file, loaded with `weights_only=True`: tensors, numbers,
    strings and plain containers only, so a `.pt` that someone hands over can never run code."""
    data = load_weights_only(path)
    if not isinstance(data, dict) or "model" not in data or (
            "model_args" not in data and ("model_name" not in data or "num_classes" not in data)):
        raise SkpipeError(f"{path}: not a skpipe checkpoint (expected a dict with model, model_name, "
                          "num_classes)")
    try:
        return Checkpoint.from_dict(data)
    except (ValueError, TypeError, KeyError) as e:
        raise SkpipeError(f"{path}: not a skpipe checkpoint ({str(e)[:100]})") from None
