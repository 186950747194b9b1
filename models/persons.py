"""Persons folded into the batch and pooled before the classifier (PYSKL's approach): the
network sees one person at a time, so its parameters do not depend on M."""

from __future__ import annotations

import torch


def fold_persons(x: torch.Tensor, lengths: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """x (B, T, V, C) -> as is, M = 1; x (B, M, T, V, C) -> (B * M, T, V, C), each sample's
    persons adjacent, and lengths (B,) repeated to (B * M,)."""
    if x.dim() == 4:
        return x, lengths, 1
    b, m = x.shape[:2]
    x = x.reshape(b * m, *x.shape[2:])  # (B * M, T, V, C)
    if lengths is not None:
        lengths = lengths.repeat_interleave(m)  # (B * M,)
    return x, lengths, m


def pool_persons(features: torch.Tensor, m: int) -> torch.Tensor:
    """(B * M, F) -> (B, F): the mean over each sample's M persons (an absent one counts, as in
    PYSKL's GCNHead)."""
    if m == 1:
        return features
    return features.reshape(-1, m, features.shape[-1]).mean(dim=1)  # (B, M, F) -> (B, F)
