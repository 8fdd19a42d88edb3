#!/usr/bin/env bash
# The traffic-control benchmarks of docs/BENCHMARKS.md, side by side in one run:
#  1. a tenant-scoped read through the full middleware stack vs the same handlers without it;
#  2. single-event ingest for one tenant's key with 10 tenants present vs 100,000.
# Usage: bash benches/traffic.sh [seconds-per-run]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
cargo build --release --bin loadgen >/dev/null 2>&1
LG=./target/release/loadgen
TOKEN=bench-admin-token-0123456789
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM; load generator on the same cores"

wait_up() { for _ in $(seq 100); do curl -sf "http://$1/health" >/dev/null && return; sleep 0.1; done; }
key() { # a viewer key of a fresh enterprise tenant (1000 requests a minute would limit the run, so no limit)
    local url=$1 slug=$2
    curl -sf -X POST "$url/api/tenants" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d "{\"name\":\"$slug\",\"slug\":\"$slug\",\"plan\":\"enterprise\",\"settings\":{\"rate_limit_per_minute\":1000000}}" >/dev/null
    curl -sf -X POST "$url/api/tenant/$slug/keys" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d '{"name":"bench","role":"owner"}' | sed 's/.*"key":"\([^"]*\)".*/\1/'
}

echo "== 1. middleware cost: GET /api/usage/limits with a tenant key, 32 clients"
for mode in "" "--without-middleware"; do
    rm -rf "$WORK/mw"
    $LG serve --data-dir "$WORK/mw" --bind 127.0.0.1:18110 --token $TOKEN $mode >/dev/null 2>&1 &
    PID=$!
    wait_up 127.0.0.1:18110
    K=$(key http://127.0.0.1:18110 bench-mw)
    echo -n "${mode:-full stack}: "
    $LG get --url http://127.0.0.1:18110/api/usage/limits --token "$K" --clients 32 --seconds "$SECS"
    kill $PID; wait $PID 2>/dev/null || true
done

echo "== 2. ingest and resolution with 10 vs 100,000 tenants present: single events, 64 clients"
$LG serve --data-dir "$WORK/many" --bind 127.0.0.1:18111 --token $TOKEN >/dev/null 2>&1 &
PID=$!
wait_up 127.0.0.1:18111
$LG tenants --url http://127.0.0.1:18111 --token $TOKEN --count 9 --clients 1 --tag few >/dev/null
K=$(key http://127.0.0.1:18111 bench-probe)
echo -n "10 tenants: "; $LG ingest --url http://127.0.0.1:18111 --token "$K" --clients 64 --seconds "$SECS" --tag t10
$LG tenants --url http://127.0.0.1:18111 --token $TOKEN --count 99990 --clients 8 --tag many
echo -n "100,000 tenants: "; $LG ingest --url http://127.0.0.1:18111 --token "$K" --clients 64 --seconds "$SECS" --tag t100k
echo "tenants present: $(sqlite3 "$WORK/many/tenantry.db" 'select count(*) from tenants' 2>/dev/null || echo '(sqlite3 not installed)')"
kill $PID
