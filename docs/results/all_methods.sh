#!/usr/bin/env bash
# Regenerates docs/results/all_methods.md: every registered method on the embedded synthetic
# test sets, trainable ones at the `quick` CPU recipe with seed 0 (trained on synth-train,
# validated on synth-val, never on a test set), training-free ones as they are.
# A finished run in $CKPT is reused (`train --resume` returns it), so a rerun only evaluates.
set -euo pipefail
cd "$(dirname "$0")/../.."
STORE=docs/results/all-methods-store
CKPT="${CKPT:-${IMLBENCH_HOME:-$HOME/.cache/imlbench}/all-methods-quick}"
TRAINABLE="seg_ce ncl mpc mpc_no_stage1 segformer_b0 mmseg_deeplabv3plus_r50 trufor mvss_net iml_vit cat_net pscc_net"
for m in $TRAINABLE; do
  imlbench train --method "$m" --recipe quick --seed 0 --resume --out-dir "$CKPT/$m" --quiet > /dev/null
  imlbench run --method "$m" --checkpoint "$CKPT/$m/best.safetensors" --dataset all \
    --results-dir "$STORE" --quiet > /dev/null
done
imlbench run --method ela,noise_mad,jpeg_grid --dataset all --results-dir "$STORE" --quiet > /dev/null
imlbench leaderboard --results-dir "$STORE" --metric pixel_f1 --out docs/results/all_methods.md > /dev/null
imlbench leaderboard --results-dir "$STORE" --metric pixel_auc --out docs/results/all_methods_auc.md > /dev/null
