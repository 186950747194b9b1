"""PyTorch's own distributed engine, as skpipe uses it: torchrun's environment, DDP, gloo / nccl.

A process started by `torchrun` (or by `skpipe train --nproc N`, which calls torchrun's own
launcher) finds RANK / WORLD_SIZE / LOCAL_RANK in its environment; `setup` joins the process
group (gloo on CPU, nccl on CUDA). Rank 0 alone writes the run directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from pipeline.run.runtime import resolve_device


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    local_world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


@dataclass(frozen=True)
class Launch:
    """Where torchrun placed this process, read from its environment in this one place."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    under_torchrun: bool = False  # LOCAL_RANK set: this process is one of torchrun's workers


def launch_env() -> Launch:
    """torchrun's RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE (one process when unset)."""
    env = os.environ
    return Launch(int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0")),
                  int(env.get("LOCAL_WORLD_SIZE", "1")), "LOCAL_RANK" in env)


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when torchrun started more than one rank."""
    at = launch_env()
    rank, world, local_rank, local_world = at.rank, at.world, at.local_rank, at.local_world
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, local_world, dev)


def teardown(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: list[float], info: DistInfo) -> list[float]:
    """Element-wise sum over ranks (float64, so counts stay exact)."""
    if not info.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64,
                     device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def broadcast(obj: Any, info: DistInfo) -> Any:
    """Rank 0's `obj`, on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def sync_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Rank 0's BatchNorm statistics everywhere, so every rank evaluates the same model."""
    if info.distributed:
        for b in model.buffers():
            dist.broadcast(b, src=0)


def launch(nproc: int, argv: list[str]) -> int:
    """Run `skpipe <argv>` in `nproc` processes on this machine, through torchrun's launcher."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "cli.main", *argv]
    return subprocess.call(cmd)
