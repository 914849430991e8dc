#!/usr/bin/env bash
# Regenerates Sources/FlockWire/Generated from Sources/FlockWire/*.proto with Debian's protoc and the
# protoc plugins built from the package mirror (not SwiftPM's build plugin, which compiles protoc from source).
# Run by `make proto`; the generated Swift is committed.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v protoc >/dev/null || { echo "proto: protoc is missing; run \`make deps\` (protobuf-compiler)." >&2; exit 1; }
swift build -c release --product protoc-gen-swift
swift build -c release --product protoc-gen-grpc-swift-2
BIN=$(swift build -c release --show-bin-path)
OUT=Sources/FlockWire/Generated
mkdir -p "$OUT"
rm -f "$OUT"/*.swift
protoc \
    --plugin=protoc-gen-swift="$BIN/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift-2="$BIN/protoc-gen-grpc-swift-2" \
    --swift_out="$OUT" --swift_opt=Visibility=Public \
    --grpc-swift-2_out="$OUT" --grpc-swift-2_opt=Visibility=Public,Client=true,Server=true \
    -I Sources/FlockWire Sources/FlockWire/*.proto
echo "proto: wrote $(ls "$OUT" | tr '\n' ' ')"
