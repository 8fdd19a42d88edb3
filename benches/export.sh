#!/usr/bin/env bash
# The usage CSV export at 1M events: events/s and the server's RSS growth while it streams.
# Usage: bash benches/export.sh [events]   (default 1000000; builds release binaries first)
# Fills a fresh database through the API (1000-event batches, spread over 90 days), restarts
# the server so its memory starts from a clean state, warms it with a small export, then
# exports everything with curl while sampling the server's VmRSS every 20 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
cargo build --release --bin tenantry --bin loadgen >/dev/null 2>&1
LG=./target/release/loadgen
TOKEN=bench-admin-token-0123456789
PORT=18130
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
serve() {
    TENANTRY_DATA_DIR=$WORK/data TENANTRY_BIND=127.0.0.1:$PORT TENANTRY_ADMIN_TOKEN=$TOKEN \
        ENCRYPTION_KEY=bench-encryption-key-0123 TENANTRY_LOG=warn ./target/release/tenantry >/dev/null 2>&1 &
    SERVER=$!
    for _ in $(seq 100); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && return; sleep 0.1; done
}
stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; }
rss_kib() { awk '/VmRSS/{print $2}' /proc/"$SERVER"/status; }

serve
$LG ingest --url http://127.0.0.1:$PORT --token $TOKEN --clients 4 --batch 1000 \
    --requests $((EVENTS / 1000)) --spread-days 90 --tag x >/dev/null
STATS=$(curl -sf -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$PORT/api/usage/stats?from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z" | grep -o '"events":[0-9]*' | head -1)
echo "filled: $STATS ($(du -sh "$WORK/data" | cut -f1) on disk)"
stop
serve
URL="http://127.0.0.1:$PORT/api/usage/events/export"
curl -sf -H "Authorization: Bearer $TOKEN" "$URL?to=2026-01-02T00:00:00Z" -o /dev/null   # warm-up
BASE=$(rss_kib)
PEAK=$BASE
( while kill -0 "$SERVER" 2>/dev/null; do rss_kib; sleep 0.02; done ) > "$WORK/rss" &
SAMPLER=$!
# Counted as it arrives (no field holds a raw line break, so lines = rows + the header):
# writing 233 MiB to the disk of a busy VM would measure the disk, not the export.
S=$(date +%s.%N)
LINES=$(curl -sf -H "Authorization: Bearer $TOKEN" "$URL" | wc -l)
T=$(awk -v a="$S" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
kill $SAMPLER 2>/dev/null || true
PEAK=$(sort -n "$WORK/rss" | tail -1)
ROWS=$((LINES - 1))
echo "exported $ROWS events in ${T}s: $(awk -v n="$ROWS" -v t="$T" 'BEGIN{printf "%.0f", n/t}') events/s"
echo "server RSS: $((BASE / 1024)) MiB before, $((PEAK / 1024)) MiB at peak: growth $(awk -v a="$BASE" -v b="$PEAK" 'BEGIN{printf "%.1f", (b-a)/1024}') MiB"
# Two more runs, to see that the figure holds and memory does not climb run over run.
for RUN in 2 3; do T=$(curl -sf -H "Authorization: Bearer $TOKEN" "$URL" -o /dev/null -w "%{time_total}")
echo "export $RUN: ${T}s, $(awk -v n="$ROWS" -v t="$T" 'BEGIN{printf "%.0f", n/t}') events/s; RSS now $(( $(rss_kib) / 1024 )) MiB"; done
stop
