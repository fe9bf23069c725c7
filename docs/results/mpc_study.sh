#!/usr/bin/env bash
# Regenerates docs/results/mpc_vs_seg_ce.md: mpc (30 contrastive + 120 head steps), mpc_no_stage1
# (the same network, encoder and head trained jointly for 150 steps) and seg_ce (150 steps), each
# with the quick CPU recipe (equal budget: 150 steps x 8 images at 256^2, the same 1200 images) on
# synth-train (validation on synth-val, never on test sets) for seeds 0, 1, 2, then evaluated on
# the synthetic test sets clean and under JPEG 70. Both MPC variants also with head_loss=ce (the
# official focal loss, alpha 0.5, gamma 2, leaves probabilities below 0.5: F1 at 0.5 is then 0
# whatever the ranking). Two runs at a time, one thread each.
# seg_ce's checkpoints are shared with ncl_study.sh (same recipe and seeds): whichever script runs
# first trains them, the other only evaluates.
set -euo pipefail
cd "$(dirname "$0")/../.."
store=docs/results/mpc-study
export OMP_NUM_THREADS=1
for seed in 0 1 2; do
  echo "--method mpc --seed $seed"
  echo "--method mpc_no_stage1 --seed $seed"
  echo "--method mpc --config head_loss=ce --seed $seed"
  echo "--method mpc_no_stage1 --config head_loss=ce --seed $seed"
done | xargs -P 2 -L 1 sh -c 'imlbench run $0 "$@" --dataset all --perturb jpeg:70 --results-dir '"$store"' --quiet > /dev/null'
for seed in 0 1 2; do
  imlbench run --method seg_ce --seed "$seed" --dataset all --perturb jpeg:70 --results-dir "$store" --quiet > /dev/null
done
imlbench leaderboard --results-dir "$store" --out docs/results/mpc_vs_seg_ce.md --csv docs/results/mpc_vs_seg_ce.csv
