"""Networks and the skeleton graph. `build_model(name, num_classes)` returns an nn.Module."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from models.lstm import BiLSTM
from models.stgcn import STGCN
from models.stgcnpp import STGCNPP

MODELS: dict[str, Callable[..., nn.Module]] = {"lstm": BiLSTM, "stgcn": STGCN, "stgcnpp": STGCNPP}


def build_model(name: str, num_classes: int, dropout: float = 0.5) -> nn.Module:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name](num_classes=num_classes, dropout=dropout)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "build_model", "count_parameters"]
