"""The run engine against ONNX Runtime (issue 30), measured in one run on this machine.

For each network and skeleton below, a model of random weights (BatchNorm statistics drawn too,
so that folding them is not trivial) runs R rows of seeded input three ways, each as
`ShippedModel.logits` runs it: the plain eager network, `models.fused.fuse`'s form (what
`skpipe.load(RUN)` now runs) and the same network's ONNX export (skpipe's exporter settings) in
onnxruntime. Rounds interleave the engines, so that a busy neighbour slows all three alike; the
table gives each engine's median rows/s over the rounds and the ratios to ONNX Runtime, and the
largest difference of the fused logits from the eager ones.

    python -m benchmarks.engine [--rows 320] [--rounds 5] [--threads 2]

With `--bf16` it measures what `--precision bf16` gives inference (issue 37): the fused network
in fp32 against the same in bf16 autocast, rows/s and the largest difference in probability
(softmax over the classes); meaningful on a CPU with native bf16 (avx512_bf16 or amx_bf16).

With `--run RUN --export FILE.onnx --pickle RAW.pkl` it measures instead what a user sees:
`skpipe.load(RUN)` (fused) against `skpipe.load(FILE.onnx)`, `ShippedModel.logits` on the
pickle's first clips (repeated where it has fewer) preprocessed from the card, and the same
eager network as a reference.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

CASES = (  # model, layout, dims, persons, frames
    ("stgcnpp", "kinect20", 3, 1, 32),
    ("stgcnpp", "coco17", 2, 1, 100),
    ("stgcnpp", "ntu25", 3, 2, 64),
    ("pyskl_stgcn", "coco17", 2, 1, 100),
    ("stgcn", "coco17", 2, 1, 100),
)


def network(model: str, layout: str, dims: int, persons: int) -> tuple[torch.nn.Module, object]:
    """The registry's network of random weights, its BatchNorms given drawn statistics."""
    from models import build_model
    from models.layouts import LAYOUTS, Skeleton

    skeleton = Skeleton(layout=LAYOUTS[layout], dims=dims, score=dims == 2, persons=persons)
    torch.manual_seed(0)
    net = build_model(model, 60, skeleton=skeleton)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)  # type: ignore[union-attr]
            m.running_var.uniform_(0.5, 2.0)  # type: ignore[union-attr]
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return net.eval(), skeleton


def onnx_engine(net: torch.nn.Module, example: tuple[torch.Tensor, torch.Tensor]) -> Callable:
    """onnxruntime on the network's export with skpipe's exporter settings, fed as
    `ShippedModel.logits` feeds it (MAX_ROWS rows per run)."""
    import onnxruntime

    from pipeline.infer.export import onnx_graph
    from pipeline.infer.shipped import MAX_ROWS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = onnx_graph(net, example)
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    def run(x: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
        feed = {"x": x.numpy(), "lengths": lengths.numpy()}
        return np.concatenate([session.run(None, {n: feed[n][i : i + MAX_ROWS] for n in names})[0]
                               for i in range(0, len(x), MAX_ROWS)])

    return run


def torch_engine(net: torch.nn.Module, precision: str = "fp32") -> Callable:
    from pipeline.run.forward import clip_logits

    return lambda x, lengths: clip_logits(net, x, lengths, 1, precision=precision)[:, 0].float().numpy()


def _case_input(case: tuple[str, str, int, int, int], rows: int
                ) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, str]:
    """The case's network, `rows` rows of seeded input, their lengths, and the case's name."""
    model, layout, dims, persons, frames = case
    net, skeleton = network(model, layout, dims, persons)
    shape = (rows, *((persons,) if persons > 1 else ()), frames, skeleton.num_joints, skeleton.channels)  # type: ignore[attr-defined]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    lengths = torch.full((rows,), frames, dtype=torch.int64)
    return net, x, lengths, f"{model} {layout} {dims}D M={persons} T={frames}"


def _median_speeds(engines: dict[str, Callable], x: torch.Tensor, lengths: torch.Tensor, rounds: int
                   ) -> dict[str, float]:
    """Each engine's median rows/s over `rounds` interleaved rounds."""
    speed: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(rounds):
        for name, run in engines.items():
            t = time.perf_counter()
            run(x, lengths)
            speed[name].append(len(x) / (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in speed.items()}


def measure_bf16(case: tuple[str, str, int, int, int], rows: int, rounds: int) -> dict[str, object]:
    """The fused network in fp32 and in bf16: median rows/s over interleaved rounds, and the
    largest absolute difference of the class probabilities."""
    from models.fused import fuse

    net, x, lengths, name = _case_input(case, rows)
    fused = fuse(net)
    engines = {"fp32": torch_engine(fused), "bf16": torch_engine(fused, "bf16")}
    probs = {k: torch.softmax(torch.from_numpy(run(x[:64], lengths[:64])), -1) for k, run in engines.items()}
    diff = float((probs["bf16"] - probs["fp32"]).abs().max())
    return {"case": name, **_median_speeds(engines, x, lengths, rounds), "diff": diff}


def measure(case: tuple[str, str, int, int, int], rows: int, rounds: int) -> dict[str, object]:
    from models.fused import fuse

    net, x, lengths, name = _case_input(case, rows)
    engines = {"eager": torch_engine(net), "fused": torch_engine(fuse(net)),
               "onnxruntime": onnx_engine(net, (x[:8], lengths[:8]))}
    ref = engines["eager"](x[:64], lengths[:64])
    err = float(np.abs(engines["fused"](x[:64], lengths[:64]) - ref).max() / np.abs(ref).max())
    return {"case": name, **_median_speeds(engines, x, lengths, rounds), "err": err}


def measure_run(run: str, export: str, pickle: str, rows: int, rounds: int) -> None:
    import skpipe
    from pipeline.infer.inference import load_run_model
    from pipeline.run.config import open_run
    from pipeline.source.raw import read_raw

    ours, onnx = skpipe.load(run), skpipe.load(export)
    eager = torch_engine(load_run_model(open_run(Path(run)), "best")[0].float().eval())
    clips = max(1, rows // ours.card.num_clips)
    anns = read_raw(Path(pickle)).annotations
    anns = [{**a, "frame_dir": f"{a['frame_dir']}#{i}"}  # a small pickle's clips repeated
            for i, a in enumerate((anns * -(-clips // len(anns)))[:clips])]
    x, lengths = skpipe.preprocess(anns, ours.card)
    x_t, l_t = torch.from_numpy(x), torch.from_numpy(lengths)
    engines = {"skpipe.load(RUN)": lambda: ours.logits(x, lengths),
               "eager": lambda: eager(x_t, l_t),
               "skpipe.load(ONNX)": lambda: onnx.logits(x, lengths)}
    speed: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(rounds):
        for name, go in engines.items():
            t = time.perf_counter()
            go()
            speed[name].append(len(x) / (time.perf_counter() - t))
    base = statistics.median(speed["skpipe.load(ONNX)"])
    print(f"{run}: {len(x)} rows of {tuple(x.shape[1:])}, median of {rounds} interleaved rounds\n")
    print("| engine | rows/s (median) | range | / ONNX |\n|---|---:|---:|---:|")
    for name, v in speed.items():
        print(f"| {name} | {statistics.median(v):.0f} | {min(v):.0f}-{max(v):.0f} | "
              f"{statistics.median(v) / base:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=320)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="fp32 against bf16 inference")
    ap.add_argument("--run")
    ap.add_argument("--export")
    ap.add_argument("--pickle")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.run:
        with torch.inference_mode():
            measure_run(args.run, args.export, args.pickle, args.rows, args.rounds)
        return
    if args.bf16:
        from pipeline.run.runtime import CPU, native_bf16

        print(f"{args.rows} rows, median of {args.rounds} interleaved rounds, {args.threads} torch threads, "
              f"native bf16: {native_bf16(CPU)}\n")
        print("| network | fp32 rows/s | bf16 rows/s | bf16 / fp32 | largest probability difference |")
        print("|---|---:|---:|---:|---:|")
        with torch.inference_mode():
            for case in CASES:
                r = measure_bf16(case, args.rows, args.rounds)
                fp32, bf16 = float(r["fp32"]), float(r["bf16"])  # type: ignore[arg-type]
                print(f"| {r['case']} | {fp32:.0f} | {bf16:.0f} | {bf16 / fp32:.2f} | {r['diff']:.1e} |",
                      flush=True)
        return
    print(f"{args.rows} rows, median of {args.rounds} interleaved rounds, {args.threads} torch threads\n")
    print("| network | eager rows/s | fused rows/s | onnxruntime rows/s | eager / ORT | fused / ORT "
          "| fused vs eager (max abs diff / max abs logit) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with torch.inference_mode():
        for case in CASES:
            r = measure(case, args.rows, args.rounds)
            ort = float(r["onnxruntime"])  # type: ignore[arg-type]
            print(f"| {r['case']} | {r['eager']:.0f} | {r['fused']:.0f} | {ort:.0f} | "
                  f"{float(r['eager']) / ort:.2f} | {float(r['fused']) / ort:.2f} | {r['err']:.1e} |",  # type: ignore[arg-type]
                  flush=True)


if __name__ == "__main__":
    main()
