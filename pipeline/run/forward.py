"""The forward pass that training's validation and inference share: K temporal clips of each
sample folded into the batch dimension (PYSKL's layout), under the run's precision."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.run.runtime import CPU, autocast


@torch.no_grad()
def clip_logits(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor, clips: int,
                device: torch.device = CPU, precision: str = "fp32") -> torch.Tensor:
    """x (B * K, T, V, C), lengths (B * K,) -> logits (B, K, num_classes) float32 on `device`.

    The model must already be on `device` and in eval mode."""
    if len(x) % clips:
        raise ValueError(f"a batch of {len(x)} inputs is not a whole number of {clips}-clip samples")
    with autocast(precision, device):
        logits = model(x.to(device, non_blocking=True), lengths.to(device, non_blocking=True))
    return logits.float().reshape(-1, clips, logits.shape[-1])  # (B, K, classes)
