#!/usr/bin/env bash
# Regenerates docs/results/ncl_vs_seg_ce.md: ncl, ncl with contour=drop and seg_ce, each trained
# with the quick CPU recipe (equal budget: same network, input size, steps, batch, optimizer) on
# synth-train (validation on synth-val, never on test sets) for seeds 0, 1, 2, then evaluated on
# the synthetic test sets clean and under JPEG 70. Two runs at a time, one thread each.
set -euo pipefail
cd "$(dirname "$0")/../.."
store=docs/results/ncl-study
export OMP_NUM_THREADS=1
for seed in 0 1 2; do
  echo "--method seg_ce --seed $seed"
  echo "--method ncl --seed $seed"
  echo "--method ncl --config contour=drop --seed $seed"
done | xargs -P 2 -L 1 sh -c 'imlbench run $0 "$@" --dataset all --perturb jpeg:70 --results-dir '"$store"' --quiet > /dev/null'
imlbench leaderboard --results-dir "$store" --out docs/results/ncl_vs_seg_ce.md --csv docs/results/ncl_vs_seg_ce.csv
