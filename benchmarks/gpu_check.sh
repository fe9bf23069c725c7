#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): gpu tests, images/s per method at 512² (bare loop vs
# end to end, fp32 vs AMP, channels_last, torch.compile), the MPC paper-size training step and a
# 2-process NCCL run when two GPUs exist; one markdown report, also under $OUT when it is set.
#   bash benchmarks/gpu_check.sh            # on a CUDA machine, at most ~8 minutes
#   bash benchmarks/gpu_check.sh --dry-run  # anywhere: the same code paths on CPU, tiny inputs
# Runs from a plain copy of the tree with the python3 that holds torch: the project comes from
# PYTHONPATH (nothing is installed); methods whose packages are missing are skipped with a line.
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export IMLBENCH_HOME="${IMLBENCH_HOME:-$(mktemp -d)}"  # synthetic data and caches stay out of ~
# at most 8 minutes in all: the driver keeps to its budget, this is the backstop
exec timeout --signal=TERM 480 "$py" benchmarks/gpu_check.py "$@"
