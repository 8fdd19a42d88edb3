#!/usr/bin/env bash
# The job queue benchmarks of docs/BENCHMARKS.md ("Job queue"): batch enqueue (jobs/s), lease +
# complete round trips with 16 workers (jobs/s, max_jobs 1 and 10), and lease latency with 10
# jobs queued and with BIG (default 1M) queued over 1000 tenants, beside GET /health (the bare
# server) in the same run. Every request uses the admin token (never rate-limited); the tenants'
# rate limits and max_running_jobs are raised anyway, as a real deployment would for a test.
# Usage: bash benches/queue.sh [BIG] [seconds-per-measure]
set -euo pipefail
cd "$(dirname "$0")/.."
BIG=${1:-1000000}
SECS=${2:-5}
cargo build --release --bin tenantry --bin loadgen >/dev/null 2>&1
LG=./target/release/loadgen
TOKEN=bench-admin-token-0123456789
PORT=18160
URL=http://127.0.0.1:$PORT
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
serve() { # data-dir
    local t0
    t0=$(date +%s.%N)
    TENANTRY_DATA_DIR=$1 TENANTRY_BIND=127.0.0.1:$PORT TENANTRY_ADMIN_TOKEN=$TOKEN \
        ENCRYPTION_KEY=bench-encryption-key-0123 TENANTRY_LOG=warn ENABLE_MULTI_TENANT=true \
        ENABLE_HOSTED_QUEUE=true ./target/release/tenantry >/dev/null 2>&1 &
    SERVER=$!
    for _ in $(seq 600); do curl -sf $URL/health >/dev/null && break; sleep 0.1; done
    echo "   server up in $(awk -v a="$t0" -v b="$(date +%s.%N)" "BEGIN{printf \"%.1f\", b-a}") s"
}
stop() { kill $SERVER; wait $SERVER 2>/dev/null || true; }
lg() { "$LG" jobs "$@" --url $URL --token $TOKEN | sed 's/^/   /'; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (with uncommitted changes)')"
echo "== 1. enqueue and lease + complete: 4 pro tenants"
serve "$WORK/a"
echo " GET /health (baseline), 1 client and 16:"
$LG get --url $URL/health --token $TOKEN --clients 1 --seconds "$SECS" | sed 's/^/   /'
$LG get --url $URL/health --token $TOKEN --clients 16 --seconds "$SECS" | sed 's/^/   /'
lg setup --tenants 4 --tag q
echo " batch enqueue, batches of 1000, 4 clients:"
lg enqueue --tenants 4 --tag q --batch 1000 --clients 4 --seconds "$SECS"
echo " single enqueue, 16 clients (for comparison):"
lg enqueue --tenants 4 --tag q --batch 1 --clients 16 --seconds "$SECS"
echo " lease + complete, 16 workers:"
lg work --workers 16 --max-jobs 1 --seconds "$SECS"
lg work --workers 16 --max-jobs 10 --seconds "$SECS"
echo " lease + complete, 1 worker (latency without queueing):"
lg work --workers 1 --max-jobs 1 --seconds "$SECS"
echo "   database: $(du -sh "$WORK/a" | cut -f1)"
stop

echo "== 2. lease latency with 10 jobs queued (10 tenants, one job each, refilled as completed)"
serve "$WORK/b"
lg setup --tenants 10 --tag s
lg enqueue --tenants 10 --tag s --batch 1 --clients 1 --jobs 10
lg work --workers 1 --max-jobs 1 --seconds "$SECS" --refill
lg work --workers 16 --max-jobs 1 --seconds "$SECS" --refill

echo "== 3. lease latency with $BIG jobs queued over 1000 tenants"
lg setup --tenants 1000 --tag m
lg enqueue --tenants 1000 --tag m --batch 1000 --clients 4 --jobs "$BIG"
echo "   database: $(du -sh "$WORK/b" | cut -f1)"
lg work --workers 1 --max-jobs 1 --seconds "$SECS"
lg work --workers 16 --max-jobs 1 --seconds "$SECS"
lg work --workers 16 --max-jobs 10 --seconds "$SECS"
stop
echo " restart on the same data (the schedule is rebuilt from the jobs table):"
serve "$WORK/b"
lg work --workers 1 --max-jobs 1 --seconds "$SECS"
stop
