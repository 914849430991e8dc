#!/usr/bin/env bash
# The end-to-end demo on one machine, run by `make demo` after `make data build`.
#
# flock-edge trains the McMahan 2NN on the 4,000 MNIST training rows, saves the model and
# evaluates it on the 1,000 test rows; then one flock-server serve and 10 flock-edge run
# processes train it federatedly over gRPC on 127.0.0.1 (shards, 20 rounds of FedAvg), the
# admin status and rounds tables are printed, every process is stopped (also on Ctrl-C),
# and flock-server simulate runs the same federation in one process for comparison.
#
# Secure aggregation is on (the default), and two failure drills run: edge-8 kills itself with
# SIGKILL in the share-keys phase of round 3 and edge-9 in the masked-input phase of round 5
# (`flock-edge run --crash-at`); each is started again at once, as a device that comes back.
# Both rounds complete with the survivors (the rounds table's `secagg drops` column).
#
# Every round's model goes into the server's model registry: the first becomes production, the next
# ones are shadowed on half the edges (each holds 20% of its rows out of training for the paired
# evidence) and promoted when they are no worse; the registry's versions and production's history are
# printed, and edge-0 answers a few test rows with the production model it serves (`flock-edge predict`).
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
echo "== flock-server data partition: 10 edges hold the training data as shards (McMahan et al. 2017)"
"$BIN/flock-server" data partition --data data/mnist5k-train.csv --clients 10 --scheme shards --seed 0 --out "$OUT/parts-shards-10"

echo
echo "== Federated training over gRPC on 127.0.0.1: 1 flock-server serve + 10 flock-edge run processes, 20 rounds of FedAvg"
rm -rf "$OUT/server" "$OUT/edges"
mkdir -p "$OUT/edges"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted; stopping every process it started"; exit 130' INT TERM

# Rounds wait for `admin start` (issued once all 10 edges are connected); a round aggregates with
# 8 or more updates, so the drills' rounds complete with the 9 survivors.
"$BIN/flock-server" serve --listen 127.0.0.1:0 --data-dir "$OUT/server" --rounds 20 --min-clients 8 --wait-for-start \
    --epochs 1 --batch 10 --lr 0.05 --holdout data/mnist5k-test.csv --heartbeat 1 --edge-timeout 3 \
    > "$OUT/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$OUT/server/serve.address" ] && break; sleep 0.1; done
ADDRESS=$(cat "$OUT/server/serve.address" 2>/dev/null) || { echo "demo: the server did not start:" >&2; cat "$OUT/server.log" >&2; exit 1; }
echo "server listening on $ADDRESS (log: $OUT/server.log)"
# Only enrolled devices take part: one one-time token per edge, each edge makes its key and gets its device
# certificate (mutual TLS from then on).
mapfile -t TOKENS < <("$BIN/flock-server" admin enrol create --count 10 --expires 1h --label demo --data-dir "$OUT/server" 2>/dev/null)
[ "${#TOKENS[@]}" -eq 10 ] || { echo "demo: could not issue enrolment tokens" >&2; exit 1; }
for i in $(seq 0 9); do
    FLOCK_ENROLMENT_TOKEN="${TOKENS[$i]}" "$BIN/flock-edge" enrol --server "$ADDRESS" --ca "$OUT/server/tls/ca.pem" \
        --state-dir "$OUT/edges/edge-$i" --id "edge-$i" > /dev/null || { echo "demo: edge-$i could not enrol" >&2; exit 1; }
done
echo "10 edges enrolled (device certificates in $OUT/edges/edge-*/identity; admin devices list shows them)"
declare -A CRASH=([8]="share-keys@3" [9]="masked-input@5")
declare -A EDGE_PID=()
start_edge() {  # start_edge I [FLOCK-EDGE OPTIONS...]
    local i=$1
    shift
    "$BIN/flock-edge" run --server "$ADDRESS" --data "$OUT/parts-shards-10/client-$i.csv" --id "edge-$i" \
        --state-dir "$OUT/edges/edge-$i" --holdout 0.2 --quiet "$@" >> "$OUT/edges/edge-$i.log" 2>&1 &
    PIDS+=($!)
    EDGE_PID[$i]=$!
    disown "$!"  # a drill's SIGKILL is expected: no "Killed" job notice from bash
}
for i in $(seq 0 9); do
    if [ -n "${CRASH[$i]:-}" ]; then start_edge "$i" --crash-at "${CRASH[$i]}"; else start_edge "$i"; fi
done
echo "10 edges started (logs: $OUT/edges/); failure drills: edge-8 --crash-at ${CRASH[8]}, edge-9 --crash-at ${CRASH[9]}"
for _ in $(seq 300); do
    "$BIN/flock-server" admin status --data-dir "$OUT/server" --json 2>/dev/null | grep -q '"connected_edges":10' && break
    sleep 0.1
done
"$BIN/flock-server" admin start --data-dir "$OUT/server" > /dev/null

SHOWN=0
STARTED=$(date +%s.%N)
while :; do
    for i in "${!CRASH[@]}"; do
        if ! kill -0 "${EDGE_PID[$i]}" 2>/dev/null; then
            echo "  drill: $(grep -- "--crash-at" "$OUT/edges/edge-$i.log" | tail -1 || echo "edge-$i stopped"); starting it again"
            unset "CRASH[$i]"
            start_edge "$i"
        fi
    done
    LINES=$(grep -c "aggregated\|failed" "$OUT/server.log" || true)
    if [ "$LINES" -gt "$SHOWN" ]; then
        grep "aggregated\|failed" "$OUT/server.log" | sed -n "$((SHOWN + 1)),${LINES}p"
        SHOWN=$LINES
    fi
    grep -q "^finished" "$OUT/server.log" && break
    kill -0 "${PIDS[0]}" 2>/dev/null || { echo "demo: the server stopped:" >&2; tail -5 "$OUT/server.log" >&2; exit 1; }
    sleep 0.2
done
ENDED=$(date +%s.%N)
echo
echo "== flock-server admin status"
"$BIN/flock-server" admin status --data-dir "$OUT/server"
echo
echo "== flock-server admin rounds"
"$BIN/flock-server" admin rounds --data-dir "$OUT/server"
awk -v a="$STARTED" -v b="$ENDED" 'BEGIN { printf "\n20 rounds over real processes in %.1f s of wall time (%.2f s per round, including start-up)\n", b - a, (b - a) / 20 }'
echo
echo "== flock-server registry list: every round's model, gated, signed, content-addressed"
"$BIN/flock-server" registry list --data-dir "$OUT/server" --limit 8
echo
echo "== flock-server registry history --alias production: each promotion with the edges' paired evidence"
"$BIN/flock-server" registry history --alias production --data-dir "$OUT/server" | tail -8
echo
echo "== flock-edge predict: edge-0 answers 5 test rows with the production model it serves (hash and signature checked)"
sed -n '1p;201p;401p;601p;801p' data/mnist5k-test.csv > "$OUT/five-rows.csv"
"$BIN/flock-edge" predict --input "$OUT/five-rows.csv" --state-dir "$OUT/edges/edge-0"
echo "(true labels: $(cut -d, -f1 "$OUT/five-rows.csv" | tr '\n' ' '))"
"$BIN/flock-server" admin stop --data-dir "$OUT/server" > /dev/null
cleanup
PIDS=()

echo
echo "== flock-server simulate: the same federation (10 edges, shards, all per round) in one process, for comparison"
"$BIN/flock-server" simulate --train data/mnist5k-train.csv --eval data/mnist5k-test.csv \
    --clients 10 --partition shards --fraction 1 --rounds 20 --model 2nn --epochs 1 --batch 10 --lr 0.05
