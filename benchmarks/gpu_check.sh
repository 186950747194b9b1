#!/usr/bin/env bash
# The CUDA path on a GPU machine, in one run: the CUDA tests, then ST-GCN++ (recommended recipe)
# on JHMDB split 1 for three seeds, trained and evaluated on the GPU, one evaluated on the CPU too,
# predict and export. Needs the zarr wheels in .whl and jhmdb14_gt_coco17.pkl in .gpudata
# (see BENCHMARKS.md). Writes its log to $OUT/gpu.log when OUT is set.
source "$(dirname "$0")/gpu_env.sh" gpu.log
W=/tmp/gpuw; rm -rf $W; mkdir -p $W
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, zarr, numpy; print('torch', torch.__version__, 'zarr', zarr.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"
nproc
echo "== CUDA tests"; python3 -m pytest -p no:cacheprovider tests/pipeline/train/test_cuda.py -q -rs 2>&1 | tail -5
echo "== JHMDB ingest"; $S ingest .gpudata/jhmdb14_gt_coco17.pkl --cache $W/jh >/dev/null && $S build-splits --cache $W/jh >/dev/null || exit 1
for seed in 0 1 2; do
  if [ "$SECONDS" -gt "${DEADLINE:-400}" ]; then echo "deadline: seed $seed and later skipped"; break; fi
  echo "== train stgcnpp recommended seed $seed (cuda)"
  t0=$(date +%s)
  $S train stgcnpp --recipe recommended --cache $W/jh --split 1 --device cuda --seed $seed --out $W/runs/s$seed | tail -3
  t1=$(date +%s); echo "train wall s: $((t1 - t0))"
  run=$(ls -d $W/runs/s$seed/*)
  $S evaluate $run --device cuda | grep -E "top-1|clips"
  t2=$(date +%s); echo "evaluate (cuda) wall s: $((t2 - t1))"
done
run=$(ls -d $W/runs/s0/*)
echo "== the seed-0 run evaluated on the CPU"; t0=$(date +%s)
$S evaluate $run --device cpu --force | grep -E "top-1|clips"; echo "evaluate (cpu) wall s: $(($(date +%s) - t0))"
echo "== predict on cuda (JSON lines) and export"
$S predict $run .gpudata/jhmdb14_gt_coco17.pkl --device cuda --batch-size 64 --json | wc -l
$S export $run --format onnx --out $W/model.onnx
$S export $run --format torchscript --out $W/model.pt
python3 - <<PY
import json, glob, statistics as st
accs = [json.load(open(p))["accuracy"] for p in sorted(glob.glob("$W/runs/s*/*/eval/test/report.json"))]
print("JHMDB split 1 test accuracy, stgcnpp recommended on cuda, seeds:", [round(a, 4) for a in accs])
if len(accs) > 1: print(f"mean {st.mean(accs):.4f} std {st.stdev(accs):.4f} n {len(accs)}")
PY
for s in 0 1 2; do cp $W/runs/s$s/*/metrics.jsonl "$OUT/metrics_s$s.jsonl" 2>/dev/null; done
