#!/usr/bin/env bash
# Benchmarks, run by `make bench` after `make data build`: local training, then secure aggregation.
#
# 1. If a Python with PyTorch is found, measures the peer first:
#    scripts/peer_torch_bench.py --out .build/bench/torch.json
#    (Python: $PEER_PYTHON if set, else .venv-peer/bin/python, else python3 if it imports torch.)
# 2. Runs `flock-server bench training` on the same data, passing --peer-json when the
#    PyTorch numbers were produced in this run, so both appear in one table.
# 3. Runs `flock-server bench secagg`: client and server time per phase and bytes per edge for
#    n in {10, 100, 500}, d in {10k, 200k, 1.6M}, 0/10/30% drop-out, secagg+ and complete
#    (complete where n^2 d is at most 2e9), beside the ChaCha20 rates of libsodium and libcrypto (about 2 minutes).
# 4. Runs `flock-server bench codecs`: upload bytes per edge, ratio to f32, accuracy and coding time
#    of each update codec on the mnist5k simulate run, iid and shards, with and without secure
#    aggregation (about 1 minute).
#
# Environment: PEER_PYTHON; TORCH_BENCH_ARGS (extra arguments for peer_torch_bench.py,
# e.g. "--threads 1 --models 2NN"); FLOCK_BENCH_ARGS (extra arguments for flock-server bench training);
# SECAGG_BENCH_ARGS (extra arguments for flock-server bench secagg, e.g. "--bonawitz");
# CODEC_BENCH_ARGS (extra arguments for flock-server bench codecs, e.g. "--partitions iid --codecs f32 q1").
# Numbers are only comparable on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.build/release
OUT=.build/bench
TORCH_JSON="$OUT/torch.json"
[ -x "$BIN/flock-server" ] || { echo "bench: $BIN/flock-server is missing; run \`make build\` first." >&2; exit 1; }
for f in data/mnist5k-train.csv data/mnist5k-test.csv; do
    [ -f "$f" ] || { echo "bench: $f is missing; run \`make data\` first." >&2; exit 1; }
done
mkdir -p "$OUT"
rm -f "$TORCH_JSON"

has_torch() { "$1" -c 'import torch, numpy' >/dev/null 2>&1; }
peer_python=""
if [ -n "${PEER_PYTHON:-}" ]; then
    has_torch "$PEER_PYTHON" || {
        echo "bench: PEER_PYTHON=$PEER_PYTHON cannot import torch and numpy; unset it or run \`make peer-deps\`." >&2
        exit 1
    }
    peer_python="$PEER_PYTHON"
elif [ -x .venv-peer/bin/python ] && has_torch .venv-peer/bin/python; then
    peer_python=.venv-peer/bin/python
elif command -v python3 >/dev/null 2>&1 && has_torch python3; then
    peer_python=python3
fi

peer_args=()
if [ -n "$peer_python" ]; then
    echo "== PyTorch peer ($peer_python): scripts/peer_torch_bench.py"
    # shellcheck disable=SC2086  # TORCH_BENCH_ARGS is a list of words on purpose
    "$peer_python" scripts/peer_torch_bench.py --data data --out "$TORCH_JSON" ${TORCH_BENCH_ARGS:-}
    [ -f "$TORCH_JSON" ] && peer_args=(--peer-json "$TORCH_JSON")
else
    echo "bench: PyTorch comparison skipped (no Python with torch found); \`make peer-deps\` installs it into .venv-peer (~6 GB)."
fi

echo "== Flock: flock-server bench training"
# shellcheck disable=SC2086
"$BIN/flock-server" bench training --data data/mnist5k-train.csv --eval data/mnist5k-test.csv \
    ${peer_args[@]+"${peer_args[@]}"} ${FLOCK_BENCH_ARGS:-}

echo "== Flock: flock-server bench secagg (client and server time per phase, beside the ChaCha20 rates of libsodium and libcrypto)"
# shellcheck disable=SC2086
"$BIN/flock-server" bench secagg ${SECAGG_BENCH_ARGS:-}

echo "== Flock: flock-server bench codecs (upload bytes, accuracy and coding time per update codec)"
# shellcheck disable=SC2086
"$BIN/flock-server" bench codecs --train data/mnist5k-train.csv --eval data/mnist5k-test.csv ${CODEC_BENCH_ARGS:-}
