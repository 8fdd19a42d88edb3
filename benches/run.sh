#!/usr/bin/env bash
# Runs every benchmark in docs/BENCHMARKS.md, side by side with the baselines, on this machine.
# Usage: bash benches/run.sh [seconds-per-run]   (builds release binaries first)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
cargo build --release --bin tenantry --bin loadgen >/dev/null 2>&1
LG=./target/release/loadgen
TOKEN=bench-admin-token-0123456789
PORT=18100
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "load generator and server share the machine"

serve() { # $1 = data dir, $2 = TENANTRY_SYNC
    TENANTRY_DATA_DIR=$1 TENANTRY_BIND=127.0.0.1:$PORT TENANTRY_ADMIN_TOKEN=$TOKEN ENCRYPTION_KEY=bench-encryption-key-0123 \
        TENANTRY_SYNC=$2 TENANTRY_LOG=warn ./target/release/tenantry >/dev/null 2>&1 &
    SERVER=$!
    for _ in $(seq 50); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && return; sleep 0.1; done
}
stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; }
rss() { grep VmHWM /proc/"$SERVER"/status | awk '{printf "%.1f MiB", $2/1024}'; }

echo "== baselines"
$LG raw-sqlite --rows 100000 --sync normal
$LG raw-sqlite --rows 20000 --sync full
$LG bare-actix --bind 127.0.0.1:18090 --workers "$(nproc)" >/dev/null 2>&1 &
BARE=$!
sleep 0.5
echo -n "bare actix, single events, 64 clients: "; $LG ingest --url http://127.0.0.1:18090 --token x --clients 64 --seconds "$SECS" --batch 1
echo -n "bare actix, 1000-event bodies, 8 clients: "; $LG ingest --url http://127.0.0.1:18090 --token x --clients 8 --seconds "$SECS" --batch 1000
kill $BARE

for SYNC in normal full; do
    echo "== tenantry ingest, TENANTRY_SYNC=$SYNC"
    serve "$WORK/ingest-$SYNC" $SYNC
    echo -n "single events, 64 clients: "; $LG ingest --url http://127.0.0.1:$PORT --token $TOKEN --clients 64 --seconds "$SECS" --batch 1 --tag s
    echo -n "1000-event batches, 8 clients: "; $LG ingest --url http://127.0.0.1:$PORT --token $TOKEN --clients 8 --seconds "$SECS" --batch 1000 --tag b
    echo "peak RSS under ingest: $(rss)"
    stop
done

echo "== reads as history grows (events spread over 90 days of 2026)"
serve "$WORK/history" normal
have=0
STATS="http://127.0.0.1:$PORT/api/usage/stats?from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z&group_by=model"
for target in 10000 1000000 10000000; do
    need=$(( (target - have) / 1000 ))
    $LG ingest --url http://127.0.0.1:$PORT --token $TOKEN --clients 4 --batch 1000 --requests $need --spread-days 90 --tag h$target >/dev/null
    have=$target
    echo "-- $target events ($(du -sh "$WORK/history" | cut -f1) on disk)"
    echo -n "stats by model: "; $LG get --url "$STATS" --token $TOKEN --clients 8 --seconds 5
    echo -n "limits: "; $LG get --url "http://127.0.0.1:$PORT/api/usage/limits" --token $TOKEN --clients 8 --seconds 5
done
echo "peak RSS after loading 10M events: $(rss)"
stop
