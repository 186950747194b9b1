"""The forward pass that training's validation and inference share: K temporal clips of each
sample folded into the batch dimension (PYSKL's layout), under the run's precision."""

from __future__ import annotations

import math

import torch
from torch import nn

from models.lstm import BiLSTM
from pipeline.run.runtime import CPU, autocast

# On a CPU the model runs a large batch in pieces of about this many frames (rows x persons x T).
# Measured (BENCHMARKS.md, issue 21) on evaluate's batches (320 rows of ST-GCN++ at T = 32, 64 of
# ST-GCN at T = 300): with glibc's default allocator, as a Python program using skpipe's API
# runs, pieces gave 1.7-2.3x the clips/s of the whole batch, whose large tensors are mapped and
# page-faulted afresh; under the CLI's tuned allocator (`runtime.configure_cpu`) 1.04-1.17x.
# A GPU takes the batch whole.
# The fused graph networks (`models.fused`) run fastest at about 1,024 frames a piece too, down
# to 1-4 rows of 300 frames (BENCHMARKS.md, issue 30); an LSTM slows below 16 rows.
PIECE_FRAMES = 1024
PIECE_ROWS = (1, 64)  # at least, at most
LSTM_MIN_ROWS = 16


def piece_rows(x: torch.Tensor, device: torch.device, min_rows: int = PIECE_ROWS[0]) -> int:
    """Rows of x (R, [M,] T, V, C) per forward on `device`."""
    if device.type != "cpu":
        return max(1, len(x))
    frames = math.prod(x.shape[1:-2])  # [M *] T per row
    return min(PIECE_ROWS[1], max(min_rows, PIECE_FRAMES // max(1, frames)))


@torch.no_grad()
def clip_logits(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor, clips: int,
                device: torch.device = CPU, precision: str = "fp32") -> torch.Tensor:
    """x (B * K, T, V, C), lengths (B * K,) -> logits (B, K, num_classes) float32 on `device`.

    The model must already be on `device` and in eval mode (rows are then independent, so
    running them in pieces changes nothing but the speed)."""
    if len(x) % clips:
        raise ValueError(f"a batch of {len(x)} inputs is not a whole number of {clips}-clip samples")
    x, lengths = x.to(device, non_blocking=True), lengths.to(device, non_blocking=True)
    rows = piece_rows(x, device, LSTM_MIN_ROWS if isinstance(model, BiLSTM) else PIECE_ROWS[0])
    with autocast(precision, device):
        logits = torch.cat([model(xp, lp).float() for xp, lp in zip(x.split(rows), lengths.split(rows),
                                                                    strict=True)])
    return logits.reshape(-1, clips, logits.shape[-1])  # (B, K, classes)
