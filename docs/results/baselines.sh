#!/usr/bin/env bash
# Regenerates docs/results/baselines.md (training-free baselines on the synthetic test sets) and
# docs/results/robustness_ela.md + docs/results/plots/ (ELA's robustness sweep on synth-splice).
set -euo pipefail
cd "$(dirname "$0")/../.."
imlbench run --method ela,noise_mad,jpeg_grid --dataset all --results-dir docs/results/baselines-store --quiet > /dev/null
imlbench leaderboard --results-dir docs/results/baselines-store --out docs/results/baselines.md > /dev/null
imlbench sweep --method ela --dataset synth-splice --perturb all --results-dir docs/results/sweep-store --quiet > /dev/null
imlbench leaderboard --results-dir docs/results/sweep-store --out docs/results/robustness_ela.md > /dev/null
imlbench plot --results-dir docs/results/sweep-store --metric pixel_f1 --out docs/results/plots
# trainable baselines next to them (quick CPU recipe, seed 0; trains if no checkpoint exists)
imlbench train --method segformer_b0 --quiet
imlbench run --method segformer_b0,seg_ce --dataset all --results-dir docs/results/baselines-store --quiet > /dev/null
imlbench leaderboard --results-dir docs/results/baselines-store --out docs/results/baselines.md > /dev/null
