"""`train --init RUN|CHECKPOINT`: start from another run's weights (one skpipe trained, or one
imported from PYSKL / MMAction2 with `skpipe import`), for fine-tuning on a small set.

Every weight whose name and shape fit the new network is loaded; the classifier is replaced when
the classes differ (in count or in names); the rest is left as initialised and named. The
network takes the source's architecture; its joints and coordinates must be the cache's. A score
channel may differ (a 3D model without scores into a cache with them, a 2D hand model of x, y
into a cache of x, y, score, and the reverse): the input weights of the shared channels are
loaded, an extra channel's start at zero (an all-zero score then changes nothing), a missing
channel's are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.layouts import Skeleton
from pipeline import SkpipeError
from pipeline.run.checkpoint import Checkpoint, load_checkpoint
from pipeline.run.config import checkpoint_file, is_run, open_run
from pipeline.source.raw import file_sha256

HEAD = "fc."  # the classifier's parameters, in every skpipe network
DATA_BN, FIRST_BLOCK = "data_bn.", "blocks.0."  # the graph networks' parameters that read the input channels


@dataclass(frozen=True)
class InitSource:
    """The checkpoint a run starts from, and the class names it was trained on (when known)."""

    path: Path
    checkpoint: Checkpoint
    class_names: tuple[str, ...] | None

    @property
    def arch(self) -> dict[str, Any]:
        return dict(self.checkpoint.args.arch)


def read_init(source: str, model: str, skeleton: Skeleton) -> InitSource:
    """The run directory's best checkpoint (or a checkpoint file), checked against the model
    and the cache's skeleton, in one line each."""
    where = Path(source)
    names = None
    if where.is_dir():
        if not is_run(where):
            raise SkpipeError(f"--init {source}: not a skpipe run (import a PYSKL / MMAction2 checkpoint "
                              "first: skpipe import CHECKPOINT --out RUN)")
        names = open_run(where).config.class_names
        where = checkpoint_file(where, "best")
    elif where.suffix == ".pth":
        raise SkpipeError(f"--init {source}: a PYSKL / MMAction2 checkpoint; import it first: "
                          f"skpipe import {source} --config CONFIG --out RUN, then --init RUN")
    ckpt = load_checkpoint(where)
    ckpt.check_finite(where)
    args = ckpt.args
    if args.name != model:
        raise SkpipeError(f"--init {source} holds a {args.name} model; train {args.name} --init ... "
                          f"(not {model})")
    theirs = args.input
    fits = (theirs.num_joints, theirs.dims) == (skeleton.num_joints, skeleton.dims) and (
        theirs.score == skeleton.score or any(k.startswith(FIRST_BLOCK) for k in ckpt.weights))
    if not fits:
        raise SkpipeError(f"--init {source} reads {theirs.describe()} ({theirs.channels} channels); the "
                          f"cache holds {skeleton.describe()} ({skeleton.channels} channels)")
    return InitSource(where, ckpt, names)


def transfer(net: nn.Module, init: InitSource, class_names: tuple[str, ...], channels: int | None = None
             ) -> dict[str, Any]:
    """Load `init`'s fitting weights into `net` (the head only when the classes are the same
    ones; the input's weights channel by channel where `net` reads `channels` others), and say
    what was loaded, re-initialised and skipped."""
    same_classes = init.class_names == class_names if init.class_names is not None else (
        init.checkpoint.args.num_classes == len(class_names))
    ours = net.state_dict()
    loaded, reinit, skipped = [], [], []
    for key, t in ours.items():
        w = init.checkpoint.weights.get(key)
        if key.startswith(HEAD) and not same_classes:
            reinit.append(key)
        elif w is not None and tuple(w.shape) == tuple(t.shape):
            loaded.append(key)
        else:
            skipped.append(key)
    theirs = init.checkpoint.args.input.channels
    mine = theirs if channels is None else channels
    fitted = {}
    if theirs != mine:  # a score channel more or less: the input's weights, channel by channel
        for key in [k for k in skipped if k in init.checkpoint.weights]:
            w = channel_fit(key, init.checkpoint.weights[key], ours[key], theirs, mine)
            if w is not None:
                fitted[key] = w
                skipped.remove(key)
                loaded.append(key)
    net.load_state_dict({**ours, **{k: init.checkpoint.weights[k].to(ours[k].dtype) for k in loaded
                                    if k not in fitted}, **fitted})
    return {"kind": "init", "from": str(init.path), "sha256": file_sha256(init.path),
            "loaded": len(loaded), "reinitialised": reinit, "skipped": skipped,
            "tensors": len(ours), "channels": [theirs, mine], "channel_fitted": sorted(fitted)}


def channel_fit(key: str, w: torch.Tensor, fresh: torch.Tensor, theirs: int, mine: int
                ) -> torch.Tensor | None:
    """`w`, a weight that reads the source's `theirs` input channels, for a network reading
    `mine`: the shared leading channels (the coordinates) copied; an extra one (a score) zero in a
    first-block weight and as initialised in the data BN; a dropped one left out. None where the
    key does not read input channels."""
    shared = min(theirs, mine)
    if key.startswith(DATA_BN) and w.dim() == 1 and fresh.dim() == 1 and len(w) % theirs == 0:
        src = w.reshape(-1, theirs)  # ([M *] V, C_theirs): BatchNorm1d over [M,] V, C
        out = fresh.clone().reshape(-1, mine)  # ([M *] V, C_mine)
        if len(src) != len(out):
            return None
        out[:, :shared] = src[:, :shared]
        return out.reshape(fresh.shape)
    if (key.startswith(FIRST_BLOCK) and w.dim() >= 2 and fresh.dim() == w.dim() and w.shape[1] == theirs
            and fresh.shape[1] == mine and w.shape[0] == fresh.shape[0] and w.shape[2:] == fresh.shape[2:]):
        out = torch.zeros_like(fresh)  # (C_out, C_mine, ...): the extra channel reads nothing yet
        out[:, :shared] = w[:, :shared]
        return out
    return None


def freeze_blocks(net: nn.Module, n: int) -> int:
    """Stop gradients to the data BN and the first `n` blocks (their BatchNorms still track the
    new data's statistics); the parameters frozen."""
    if n <= 0:
        return 0
    blocks = getattr(net, "blocks", None)
    if not isinstance(blocks, nn.Sequential):
        raise SkpipeError("--freeze applies to the graph networks (stgcnpp, pyskl_stgcn)")
    if n > len(blocks):
        raise SkpipeError(f"--freeze {n}: the network has {len(blocks)} blocks")
    data_bn = net.data_bn
    assert isinstance(data_bn, nn.Module)
    frozen = [*data_bn.parameters(), *blocks[:n].parameters()]
    for p in frozen:
        p.requires_grad_(False)
    return sum(p.numel() for p in frozen)


def describe(source: dict[str, Any]) -> str:
    """One line: what --init loaded, re-initialised and skipped."""
    reinit = source["reinitialised"]
    head = (f"re-initialised a new head ({', '.join(reinit)})" if reinit
            else "kept its head (the same classes)")
    skipped = source["skipped"]
    line = f"init from {source['from']}: loaded {source['loaded']} of {source['tensors']} tensors, {head}"
    theirs, mine = source.get("channels", [0, 0])
    if theirs != mine:
        fitted = len(source.get("channel_fitted", []))
        line += (f"; input channels {theirs} -> {mine}: {fitted} input weights fitted, "
                 + ("the extra score channel's starting at zero" if mine > theirs
                    else "the score channel's dropped"))
    if skipped:
        line += f", skipped {len(skipped)} that do not fit (first {skipped[0]})"
    return line


__all__ = ["InitSource", "describe", "freeze_blocks", "read_init", "transfer"]
