#!/usr/bin/env bash
# Side-by-side ingest runs of two or more tenantry binaries, alternating them round by round so
# the machine's drift hits each one alike (on a shared machine, back-to-back runs of the same
# binary differ by 30%). Each run gets a fresh data dir; TENANTRY_SYNC passes through.
# Usage: bash benches/ab.sh BATCH CLIENTS SECONDS ROUNDS BINARY...
#   e.g. cp target/release/tenantry /tmp/before; (change, rebuild)
#        bash benches/ab.sh 1 64 8 4 /tmp/before target/release/tenantry
# Prints, per binary, the events/s and the p99 of every round.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 5 ] || { sed -n 5,8p "$0"; exit 2; }
BATCH=$1 CLIENTS=$2 SECS=$3 ROUNDS=$4
shift 4
cargo build --release --bin loadgen >/dev/null 2>&1
TOKEN=bench-admin-token-0123456789
PORT=18112
OUT=$(mktemp)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -f "$OUT"' EXIT
for _ in $(seq "$ROUNDS"); do
    for bin in "$@"; do
        dir=$(mktemp -d)
        TENANTRY_DATA_DIR=$dir TENANTRY_BIND=127.0.0.1:$PORT TENANTRY_ADMIN_TOKEN=$TOKEN \
            ENCRYPTION_KEY=bench-encryption-key-0123 TENANTRY_LOG=warn "$bin" >/dev/null 2>&1 &
        server=$!
        for _ in $(seq 50); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.1; done
        line=$(./target/release/loadgen ingest --url http://127.0.0.1:$PORT --token $TOKEN \
            --clients "$CLIENTS" --seconds "$SECS" --batch "$BATCH" --tag ab)
        # "... = N req/s, E events/s; latency p50 A ms, p99 B ms, ..." -> "bin E B"
        echo "$bin $(echo "$line" | sed -E 's/.*, ([0-9]+) events\/s; latency p50 [0-9.]+ ms, p99 ([0-9.]+) ms.*/\1 \2/')" >>"$OUT"
        kill "$server"; wait "$server" 2>/dev/null || true
        rm -rf "$dir"
    done
done
for bin in "$@"; do
    echo "$bin: events/s $(awk -v b="$bin" '$1 == b {printf "%s ", $2}' "$OUT")| p99 ms $(awk -v b="$bin" '$1 == b {printf "%s ", $3}' "$OUT")"
done
