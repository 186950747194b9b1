#!/usr/bin/env bash
# On a GPU machine: the recommended ST-GCN++ on JHMDB-14 for the joint and bone streams and
# their 2-stream fusion over seeds (split 1), then the joint stream on splits 2 and 3; every run
# trained and evaluated with --device cuda. Needs the zarr wheels in .whl and
# jhmdb14_gt_coco17.pkl in .gpudata (BENCHMARKS.md). DEADLINE (s) skips what would not fit.
source "$(dirname "$0")/gpu_env.sh" streams.log
W=/tmp/gpus; rm -rf $W; mkdir -p $W
nvidia-smi --query-gpu=name --format=csv,noheader
$S ingest .gpudata/jhmdb14_gt_coco17.pkl --cache $W/jh >/dev/null && $S build-splits --cache $W/jh >/dev/null || exit 1
one() {  # split seed feats
  if [ "$SECONDS" -gt "${DEADLINE:-380}" ]; then echo "deadline: split $1 seed $2 $3 skipped"; return 1; fi
  local t0=$(date +%s)
  $S train stgcnpp --recipe recommended --cache $W/jh --split $1 --feats $3 --device cuda --workers 4 \
     --seed $2 --out $W/runs/s$1-$3-$2 | tail -2 | head -1
  $S evaluate $W/runs/s$1-$3-$2/* --device cuda | grep "top-1"
  echo "split $1 seed $2 $3: $(( $(date +%s) - t0 )) s"
}
for seed in 0 1; do
  one 1 $seed j && one 1 $seed b && \
    $S ensemble $W/runs/s1-j-$seed/* $W/runs/s1-b-$seed/* --device cuda --out $W/ens/s1-$seed | grep "top-1"
done
one 2 0 j; one 3 0 j
python3 - <<PY
import json, glob
for p in sorted(glob.glob("$W/runs/*/*/eval/test/report.json") + glob.glob("$W/ens/*/report.json")):
    r = json.load(open(p)); print(p.split("/")[4], r["split"], r.get("feats"), round(100 * r["accuracy"], 2))
PY
