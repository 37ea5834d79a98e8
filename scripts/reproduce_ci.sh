#!/usr/bin/env bash
# CI-scale reproduction: the four experiments, then the claims check (exit 1 if a claim fails).
# MNIST is found as the data layer does ($RDA_DATA_DIR, ../shared/data/mnist, Keras' cache, ...). Results: results/ci/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${RDA_CI_RESULTS:-results/ci}"
t0=$(date +%s)
rda outliers --config configs/outliers-ci.yaml --sweep-lambda --out "$OUT/outliers" --quiet
t1=$(date +%s); echo "== outliers (CI scale) took $((t1 - t0)) s"
rda denoise --config configs/denoise-ci.yaml --out "$OUT/denoise" --quiet
t2=$(date +%s); echo "== denoise (CI scale) took $((t2 - t1)) s"
rda features --config configs/features-ci.yaml --out "$OUT/features" --quiet
t3=$(date +%s); echo "== features (CI scale) took $((t3 - t2)) s"
# ADBench sets: $RDA_ADBENCH_DIR or ../shared/data/adbench (PyOD's detectors need the [benchmark] extra)
rda benchmark --config configs/benchmark-ci.yaml --out "$OUT/benchmark" --quiet
t4=$(date +%s); echo "== benchmark (CI scale) took $((t4 - t3)) s"
python scripts/check_claims.py "$OUT"
