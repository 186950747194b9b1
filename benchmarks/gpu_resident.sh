#!/usr/bin/env bash
# The device-resident loader on a GPU (issue 21), in one run of about 5 minutes: the CUDA tests,
# then the recommended stgcnpp recipe for 8 epochs with the numpy loader (`--loader memory`)
# and with batches built on the GPU (`--loader device`), on JHMDB split 1 when
# .gpudata/jhmdb14_gt_coco17.pkl was carried, else on a synthetic cache of the same size.
# Prints clips/s per epoch of each and their ratio. Writes its log to $OUT/resident.log.
source "$(dirname "$0")/gpu_env.sh" resident.log
W=/tmp/gpur; rm -rf $W; mkdir -p $W
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
echo "== CUDA tests"; python3 -m pytest -p no:cacheprovider tests/pipeline/train/test_cuda.py -q -rs 2>&1 | tail -4
RAW=.gpudata/jhmdb14_gt_coco17.pkl
if [ ! -f $RAW ]; then RAW=$W/synth.pkl; $S synth $RAW --classes 14 --per-class 48 >/dev/null || exit 1; fi
$S ingest $RAW --cache $W/c >/dev/null && $S build-splits --cache $W/c >/dev/null || exit 1
for mode in memory device; do
  echo "== train stgcnpp --recipe recommended --loader $mode ($RAW)"
  $S train stgcnpp --recipe recommended --cache $W/c --split 1 --device cuda --epochs 8 \
    --loader $mode --out $W/$mode | tail -2
done
python3 - "$W" <<'PY'
import glob, json, statistics, sys
rate = {}
for mode in ("memory", "device"):
    rows = [json.loads(x) for x in open(glob.glob(f"{sys.argv[1]}/{mode}/*/metrics.jsonl")[0])]
    rate[mode] = statistics.median(r["samples_per_s"] for r in rows[1:])  # epoch 1 warms up
    print(f"{mode}: clips/s per epoch", [round(r["samples_per_s"]) for r in rows], f"median {rate[mode]:.0f}")
print(f"device / memory: {rate['device'] / rate['memory']:.2f}x")
PY
