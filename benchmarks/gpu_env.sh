# Sourced by the gpu_*.sh scripts: strict mode, the log under $OUT (named by $1), the carried
# zarr wheels installed where the device image lacks them, and S, the skpipe command.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
exec > >(tee "$OUT/$1") 2>&1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 COLUMNS=110
S="python3 -m cli.main"
