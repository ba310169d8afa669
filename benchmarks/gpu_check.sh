#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py says what it measures). On a CUDA machine:
#   benchmarks/gpu_check.sh            finishes within 8 minutes
#   benchmarks/gpu_check.sh --dry-run  the same steps, tiny, on the CPU (a test runs this)
# Python packages the machine lacks travel as wheels in .whl/ (make gpu-wheels fetches them for
# the device's Python); they are installed into a private directory, never over its torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu-check-site .whl/*.whl
  export PYTHONPATH="/tmp/gpu-check-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
exec timeout 480 "$PY" -m benchmarks.gpu_check "$@"
