"""Networks and the skeleton graph. `build_model(name, num_classes)` returns an nn.Module.

The builders import their network when called, so naming the models (option checks, `compare`)
never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from models.layouts import Skeleton


def _lstm(**kw: Any) -> nn.Module:
    from models.lstm import BiLSTM

    return BiLSTM(**kw)


def _stgcn(**kw: Any) -> nn.Module:
    from models.stgcn import STGCN

    return STGCN(**kw)


def _stgcnpp(**kw: Any) -> nn.Module:
    from models.stgcnpp import STGCNPP

    return STGCNPP(**kw)


MODELS: dict[str, Callable[..., nn.Module]] = {"lstm": _lstm, "stgcn": _stgcn, "stgcnpp": _stgcnpp}


def build_model(name: str, num_classes: int, dropout: float = 0.5, skeleton: Skeleton | None = None
                ) -> nn.Module:
    """The network `name` for `skeleton`'s layout, channels and persons (the seed's COCO-17 2D
    single person by default, where the parameter counts are the seed's exactly)."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name](num_classes=num_classes, dropout=dropout, skeleton=skeleton)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "build_model", "count_parameters"]
