#!/usr/bin/env bash
# Runs the CPU benchmarks (and benchmark 1's step cost and step profile) at their default (small) sizes, one after
# another, so they never share the cores with each other; each writes bench/results/<name>.json and prints its tables.
# The GPU benchmark (bench/gpu_throughput.py --gpu) needs a CUDA machine and is not run here.
# Usage: bench/run_all.sh [python]   (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-.venv/bin/python}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

for script in trainer_overhead step_cost step_profile data_loading ddp_overhead restart operator_latency serve_load memory_estimate global_batch video_decoding; do
  echo "=== bench/${script}.py ($(date -u +%H:%M:%S) UTC)"
  case "$script" in
    trainer_overhead|data_loading) "$python" "bench/${script}.py" --profile ;;
    *) "$python" "bench/${script}.py" ;;
  esac
done
