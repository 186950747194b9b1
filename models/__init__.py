"""Networks and the skeleton graph, and `MODELS`: the registry, one entry per model.

Adding a model is its file plus one `ModelEntry` here: its builder, default epochs, a short note
and the skeletons it reads. `build_model(name, num_classes, ...)` returns an nn.Module. Builders
import their network when called, so naming the models (option checks, `compare`) never imports
torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from models.layouts import Skeleton


@dataclass(frozen=True)
class ModelEntry:
    """One model: how to build it (`num_classes`, `dropout`, `skeleton`, `arch` keywords), its
    default epochs under the seed recipe, what it is, and which skeletons it reads."""

    build: Callable[..., nn.Module]
    epochs: int
    note: str
    skeletons: str = "any layout, 2D or 3D, 1 or 2 persons"
    arch: bool = False  # takes an architecture (`arch`: PYSKL's STGCN arguments)


def _lstm(arch: dict[str, Any], **kw: Any) -> nn.Module:
    from models.lstm import BiLSTM

    return BiLSTM(**kw)


def _stgcn(arch: dict[str, Any], **kw: Any) -> nn.Module:
    from models.stgcn import STGCN

    return STGCN(**kw)


def _stgcnpp(arch: dict[str, Any], **kw: Any) -> nn.Module:
    from models.stgcnpp import STGCNPP, GCNArch

    return STGCNPP(arch=GCNArch.from_dict(arch), **kw)


def _pyskl_stgcn(arch: dict[str, Any], **kw: Any) -> nn.Module:
    from models.stgcnpp import STGCNPP, VANILLA, GCNArch

    return STGCNPP(arch=GCNArch.from_dict(arch, VANILLA), **kw)


MODELS: dict[str, ModelEntry] = {
    "lstm": ModelEntry(_lstm, 50, "2-layer BiLSTM baseline (the study's)"),
    "stgcn": ModelEntry(_stgcn, 100, "ST-GCN: 4 blocks, one fixed graph"),
    "stgcnpp": ModelEntry(_stgcnpp, 80, "PYSKL's ST-GCN++: 10 blocks, learned 3-part graph", arch=True),
    "pyskl_stgcn": ModelEntry(_pyskl_stgcn, 80, "PYSKL's ST-GCN: 10 blocks, kernel-9 TCN, weighted graph",
                              arch=True),
}


def build_model(name: str, num_classes: int, dropout: float = 0.5, skeleton: Skeleton | None = None,
                arch: dict[str, Any] | None = None) -> nn.Module:
    """The network `name` for `skeleton`'s layout, channels and persons (the seed's COCO-17 2D
    single person by default, where the parameter counts are the seed's exactly); `arch` the
    architecture of a model that takes one (PYSKL's STGCN arguments), its defaults otherwise."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    entry = MODELS[name]
    if arch and not entry.arch:
        raise ValueError(f"{name} takes no architecture")
    return entry.build(arch or {}, num_classes=num_classes, dropout=dropout, skeleton=skeleton)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "ModelEntry", "build_model", "count_parameters"]
