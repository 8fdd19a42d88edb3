#!/usr/bin/env bash
# The billing benchmarks of docs/BENCHMARKS.md: statement and report latency for a tenant with
# 10k events in the month and one with BIG (default 10M), both for the running month (an open
# statement, summed from the rollups) and the month before (final, read from the stored
# statement), beside GET /health (the bare server) in the same run.
# The events are ingested with billing off (so the past month takes them), then the server is
# restarted with ENABLE_BILLING=true; the finalizer stores last month's statements at start.
# Usage: bash benches/billing.sh [BIG] [seconds-per-measure]
set -euo pipefail
cd "$(dirname "$0")/.."
BIG=${1:-10000000}
SECS=${2:-5}
cargo build --release --bin tenantry --bin loadgen >/dev/null 2>&1
LG=./target/release/loadgen
TOKEN=bench-admin-token-0123456789
PORT=18150
URL=http://127.0.0.1:$PORT
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
api() { curl -sf -X "$1" "$URL$2" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"}; }
key() { api POST "/api/tenant/$1/keys" "{\"name\": \"bench\", \"role\": \"$2\"}" | sed -E 's/.*"key":"([^"]+)".*/\1/'; }
serve() {
    TENANTRY_DATA_DIR=$WORK/data TENANTRY_BIND=127.0.0.1:$PORT TENANTRY_ADMIN_TOKEN=$TOKEN \
        ENCRYPTION_KEY=bench-encryption-key-0123 TENANTRY_LOG=warn ENABLE_MULTI_TENANT=true \
        ENABLE_BILLING=$1 ./target/release/tenantry >/dev/null 2>&1 &
    SERVER=$!
    for _ in $(seq 100); do curl -sf $URL/health >/dev/null && break; sleep 0.1; done
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
serve false
api POST /api/tenants '{"name": "Small", "slug": "small", "plan": "pro"}' >/dev/null
api POST /api/tenants '{"name": "Big", "slug": "big", "plan": "enterprise"}' >/dev/null
# The benchmark measures the reads, not the plans' rate limits.
for t in small big; do api PATCH "/api/tenant/$t/settings" '{"rate_limit_per_minute": 1000000}' >/dev/null; done
SMALL_W=$(key small service) BIG_W=$(key big service)
SMALL_R=$(key small viewer) BIG_R=$(key big viewer)
THIS=$(date -u +%Y-%m) LAST=$(date -u -d "$(date -u +%Y-%m-01) -1 month" +%Y-%m)
DAYS=$((10#$(date -u +%d)))
seed() { # tenant-key count period days
    local from batch=1000 clients=4 requests=$(( ($2 + 999) / 1000 ))
    from=$(date -u -d "$3-01" +%s)
    [ $((requests % clients)) -eq 0 ] || clients=1
    $LG ingest --url $URL --token "$1" --clients $clients --batch $batch --requests $requests \
        --spread-days "$4" --spread-from "$from" --tag "seed-$3" | sed 's/^/   /'
}
echo "== seeding (billing off)"
for period in "$LAST" "$THIS"; do
    days=28; [ "$period" = "$THIS" ] && days=$DAYS
    echo " $period: small 10,000 events, big $BIG events over $days days"
    seed "$SMALL_W" 10000 "$period" "$days"
    seed "$BIG_W" "$BIG" "$period" "$days"
done
kill $SERVER; wait $SERVER 2>/dev/null || true
echo "   database: $(du -sh "$WORK/data" | cut -f1)"
serve true
sleep 2 # the finalizer's catch-up at start stores last month's statements
measure() { # label token path
    echo -n " $1: "
    $LG get --url "$URL$3" --token "$2" --clients 1 --seconds "$SECS" | sed -E 's/^get: //'
}
echo "== latency, 1 client, $SECS s each"
measure "GET /health (baseline)" "$SMALL_R" /health
for period in "$THIS" "$LAST"; do
    status=$(curl -sf "$URL/api/billing/statements/$period" -H "Authorization: Bearer $SMALL_R" | sed -E 's/.*"status":"([a-z]+)".*/\1/')
    measure "statement $period ($status), 10k events" "$SMALL_R" "/api/billing/statements/$period"
    measure "statement $period ($status), $BIG events" "$BIG_R" "/api/billing/statements/$period"
    measure "report $period ($status), 2 tenants" "$TOKEN" "/api/billing/report?period=$period"
done
echo "== checks"
for who in "$SMALL_R" "$BIG_R"; do
    curl -sf "$URL/api/billing/statements/$THIS" -H "Authorization: Bearer $who" |
        sed -E 's/.*"status":"([a-z]+)".*"events":([0-9]+),"input_tokens".*"amount_due_usd":([0-9.]+).*/   '"$THIS"': status \1, events \2, amount due \3/'
    echo
done
