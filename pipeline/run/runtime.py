"""Where and how the model runs: device choice, autocast, and the CPU's process settings.

Library functions only read from here (`resolve_device`, `autocast`); the settings that change
the whole process (torch threads, flush-to-zero, the allocator) are applied by the CLI entry
points, through `configure_cpu`, before they call a stage.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch

from pipeline import SkpipeError
from pipeline.run.options import DEVICES

CPU = torch.device("cpu")


def resolve_device(pref: str, local_rank: int = 0) -> torch.device:
    """`auto` | `cpu` | `cuda` -> a device; `cuda` without a GPU is refused in one line."""
    if pref not in DEVICES:
        raise SkpipeError(f"--device must be one of {', '.join(DEVICES)}, got {pref}")
    if pref == "cuda" and not torch.cuda.is_available():
        raise SkpipeError("--device cuda: no CUDA device is available to this process")
    if pref == "cuda" or (pref == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return CPU


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 / fp16 autocast on `device`; fp32 runs as is."""
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32")


BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPU flags of native bf16 arithmetic
# measured on a 2-core CPU without AVX-512 (BENCHMARKS.md): a bf16 training step ran at 2.9 clips/s
# against 22 in fp32, since bf16 is emulated there
EMULATED_BF16_SLOWDOWN = 7.6


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device, flags: frozenset[str] | None = None) -> bool:
    """Whether `device` computes bf16 natively (a CPU with avx512_bf16 or amx_bf16, or a GPU
    that supports it)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return any(f in (cpu_flags() if flags is None else flags) for f in BF16_FLAGS)


def choose_precision(precision: str, device: torch.device, flags: frozenset[str] | None = None
                     ) -> tuple[str, str]:
    """(precision to run, why): `auto` is bf16 where it is native and fp32 elsewhere; an explicit
    bf16 where it is emulated runs, with a warning naming the measured slowdown."""
    native = native_bf16(device, flags)
    if precision == "auto":
        if native:
            return "bf16", "auto: native bf16 here"
        return "fp32", "auto: no native bf16 here"
    if precision == "bf16" and not native and device.type == "cpu":
        return "bf16", (f"warning: bf16 is emulated on this CPU (no {' or '.join(BF16_FLAGS)}); a training "
                        f"step measured {EMULATED_BF16_SLOWDOWN}x slower than fp32 on such a CPU "
                        "(--precision auto picks fp32)")
    return precision, f"{precision} as asked"


INFERENCE_PRECISIONS = ("fp32", "bf16")  # inference is fp32 unless asked, whatever the run trained in


def inference_precision(asked: str, device: torch.device, flags: frozenset[str] | None = None) -> str:
    """The precision a model predicts in: `fp32` unless `bf16` is asked for, and bf16 only where
    `device` computes it natively. Why not the run's: an imported model must give its project's
    logits, and every engine (run, checkpoint, ONNX, pt2) the same probabilities on every CPU."""
    if asked not in INFERENCE_PRECISIONS:
        raise SkpipeError(f"--precision must be one of {', '.join(INFERENCE_PRECISIONS)} for inference, "
                          f"got {asked!r}")
    if asked == "bf16" and not native_bf16(device, flags):
        raise SkpipeError(f"--precision bf16: this {device.type.upper()} has no native bf16 "
                          f"({' or '.join(BF16_FLAGS)}); emulated, a step measured {EMULATED_BF16_SLOWDOWN}x "
                          "slower than fp32 (leave --precision at fp32)")
    return asked


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def _cpu_jiffies() -> tuple[int, int] | None:
    """(idle, total) CPU time of the whole machine so far, from /proc/stat (None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; user .. steal


def _own_jiffies() -> int | None:
    """CPU time this process has used so far, all its threads (/proc/self/stat utime + stime)."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


def others_busy(seconds: float = 0.2) -> float | None:
    """How many cores other processes kept busy over the next `seconds` (None where unknown):
    the machine's busy time less this process's own."""
    import time

    first, own0 = _cpu_jiffies(), _own_jiffies()
    time.sleep(seconds)
    second, own1 = _cpu_jiffies(), _own_jiffies()
    if first is None or second is None or own0 is None or own1 is None or second[1] <= first[1]:
        return None
    total = second[1] - first[1]  # jiffies of all the machine's cores over the interval
    busy = total - (second[0] - first[0]) - (own1 - own0)
    return max(0.0, busy / total * (os.cpu_count() or 1))


def default_threads(local_world: int = 1) -> int:
    """The usable cores that no other process is using now (at least one), shared between this
    machine's processes of a distributed run.

    Measured (BENCHMARKS.md, issue 21): an ST-GCN++ step on 2 threads beside one busy core ran
    at 0.31 of its speed alone (OpenMP's threads wait for the one that is descheduled), on
    1 thread at 1.05: on a shared machine one thread per idle core is about twice as fast."""
    cores = usable_cores()
    share = max(1, cores // max(1, local_world))
    busy = others_busy()
    if busy is None:
        return share
    return max(1, min(share, round((cores - busy) / max(1, local_world))))


def configure_cpu(threads: int) -> str:
    """Threads, flush-to-zero, and the allocator, for this whole process; returns which
    allocator runs. Called by the CLI entry points only.

    Flush-to-zero: LSTM backward on denormal gradients ran 8x slower. Allocator: glibc tuned by
    `apply_allocator` measured +15 % on the ST-GCN step here, as much as tcmalloc, with nothing
    to install; THP_MEM_ALLOC_ENABLE measured -17 %. SKPIPE_MALLOC=default turns it off, and a
    preloaded tcmalloc / jemalloc is left alone.
    """
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    if allocator_in_use().startswith("glibc (mallopt") and not apply_allocator():
        return "system default"
    return allocator_in_use()


def allocator_in_use() -> str:
    """Which allocator `configure_cpu` picks in this environment (read only)."""
    preload = os.environ.get("LD_PRELOAD", "")
    if "tcmalloc" in preload or "jemalloc" in preload:
        return "preloaded: " + preload
    if os.environ.get("SKPIPE_MALLOC", "tuned") == "default":
        return "glibc (default)"
    return "glibc (mallopt: no mmap, no trim)"


def apply_allocator() -> bool:
    """Tune glibc malloc for training: keep large blocks in the heap instead of mmap-ing them.

    With glibc's defaults every tensor above the mmap threshold is mapped and page-faulted
    afresh each step. Setting M_MMAP_MAX = 0 and a high M_TRIM_THRESHOLD at run time makes
    freed activations reusable. Returns False where glibc's mallopt is not available.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(-4, 0)) and bool(libc.mallopt(-1, 1 << 30))  # MMAP_MAX, TRIM
    except (OSError, AttributeError):
        return False
