#!/usr/bin/env bash
# Usage retention deleting old events while single-event ingest runs: ingest p99 with and
# without the deletion. Usage: bash benches/retention.sh [old-events] [seconds-per-run] [rounds]
# (defaults 1000000, 15 and 2; builds release binaries first).
# 1. Fills a fresh database with old events (spread over January-March 2026) through the API.
# 2. Each round: a server without retention runs single-event ingest (64 clients, then 4);
#    then one with TENANTRY_USAGE_RETENTION_DAYS=30, whose sweep starts at once, runs the same
#    ingest while it deletes.
# 3. A last server with retention finishes the deletion without ingest; its log line says when.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:-1000000}
SECS=${2:-15}
ROUNDS=${3:-2}
cargo build --release --bin tenantry --bin loadgen >/dev/null 2>&1
LG=./target/release/loadgen
TOKEN=bench-admin-token-0123456789
PORT=18140
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
serve() { # $1 = retention days ('' for none)
    env ${1:+TENANTRY_USAGE_RETENTION_DAYS=$1} TENANTRY_DATA_DIR=$WORK/data TENANTRY_BIND=127.0.0.1:$PORT \
        TENANTRY_ADMIN_TOKEN=$TOKEN ENCRYPTION_KEY=bench-encryption-key-0123 TENANTRY_LOG=info \
        ./target/release/tenantry >"$WORK/log" 2>&1 &
    SERVER=$!
    echo "   server started $(date -u +%T.%3N)"
    for _ in $(seq 100); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && return; sleep 0.1; done
}
stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; }
ingest() { # $1 = clients, $2 = tag
    echo -n "single events, $1 clients: "
    $LG ingest --url http://127.0.0.1:$PORT --token $TOKEN --clients "$1" --seconds "$SECS" --batch 1 --tag "$2"
}
old_left() {
    sqlite3 -readonly "$WORK/data/tenantry.db" "SELECT count(*) FROM usage_events WHERE ts < 1775000000000000" 2>/dev/null || echo "?"
}

serve ""
$LG ingest --url http://127.0.0.1:$PORT --token $TOKEN --clients 4 --batch 1000 \
    --requests $((OLD / 1000)) --spread-days 90 --tag old >/dev/null
echo "filled: $(old_left) old events, $(du -sh "$WORK/data" | cut -f1) on disk"
stop

# This machine's speed drifts within minutes, so the two cases alternate, round by round; the
# sweep restarts with each server start and resumes where it stopped.
for ROUND in $(seq "$ROUNDS"); do
    echo "== round $ROUND: without deletion"
    serve ""
    ingest 64 "a$ROUND"
    ingest 4 "b$ROUND"
    stop
    echo "== round $ROUND: while retention deletes old events (TENANTRY_USAGE_RETENTION_DAYS=30)"
    echo "   old events left: $(old_left)"
    serve 30
    ingest 64 "c$ROUND"
    ingest 4 "d$ROUND"
    echo "   old events left: $(old_left)"
    stop
done

echo "== the rest of the deletion, without ingest"
LEFT=$(old_left)
serve 30
for _ in $(seq 2400); do grep -q "expired usage events deleted" "$WORK/log" && break; sleep 0.25; done
echo "   $LEFT old events left at start; sweep done: $(grep "expired usage events deleted" "$WORK/log" | head -1)"
echo "   old events left: $(old_left)"
stop
