#!/usr/bin/env bash
# The end-to-end demo on one machine, run by `make demo` after `make data build`.
#
# Today: flock-edge trains the McMahan 2NN on the 4,000 MNIST training rows, saves the
# model, and evaluates the saved file on the 1,000 test rows; then flock-server simulate
# runs 20 rounds of FedAvg over 20 edges holding shards of the data, in one process.
# Federated rounds between real processes on 127.0.0.1 are added here when they land.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.build/release
OUT=.build/demo
[ -x "$BIN/flock-edge" ] || { echo "demo: $BIN/flock-edge is missing; run \`make build\` first." >&2; exit 1; }
for f in data/mnist5k-train.csv data/mnist5k-test.csv; do
    [ -f "$f" ] || { echo "demo: $f is missing; run \`make data\` first." >&2; exit 1; }
done
mkdir -p "$OUT"

echo "== flock-edge train: 2NN, 5 epochs, B=10, lr 0.05 on data/mnist5k-train.csv"
"$BIN/flock-edge" train --data data/mnist5k-train.csv --eval data/mnist5k-test.csv \
    --model 2nn --epochs 5 --batch 10 --lr 0.05 --save "$OUT/2nn.flock"

echo "== flock-edge evaluate: $OUT/2nn.flock on data/mnist5k-test.csv"
"$BIN/flock-edge" evaluate --model "$OUT/2nn.flock" --data data/mnist5k-test.csv

echo
echo "== flock-server data partition: how 20 edges would hold the training data (shards, McMahan et al. 2017)"
"$BIN/flock-server" data partition --data data/mnist5k-train.csv --clients 20 --scheme shards --seed 0 --out "$OUT/parts-shards-20"

echo
echo "== flock-server simulate: FedAvg, 20 edges (shards), 10 per round, 20 rounds, in one process"
"$BIN/flock-server" simulate --train data/mnist5k-train.csv --eval data/mnist5k-test.csv \
    --clients 20 --partition shards --fraction 0.5 --rounds 20 --model 2nn --epochs 1 --batch 10 --lr 0.05

echo
echo "Federated rounds between real processes over gRPC (flock-server serve, flock-edge run) arrive with"
echo "the next milestone; simulate runs the same server and edge code in one process."
