#!/usr/bin/env bash
# The webhook benchmarks of docs/BENCHMARKS.md: deliveries per second to a local receiver and the
# delay from an event to its delivery, at two event rates; then 10,000 deliveries pending to a
# dead endpoint, with the server's RSS and single-event ingest beside a run without them.
# Usage: bash benches/webhooks.sh [seconds-per-run]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}
cargo build --release --bin tenantry --bin loadgen >/dev/null 2>&1
LG=./target/release/loadgen
TOKEN=bench-admin-token-0123456789
PORT=18140
RECV=127.0.0.1:18141
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
api() { curl -sf -X "$1" "http://127.0.0.1:$PORT$2" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"}; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
TENANTRY_DATA_DIR=$WORK/data TENANTRY_BIND=127.0.0.1:$PORT TENANTRY_ADMIN_TOKEN=$TOKEN \
    ENCRYPTION_KEY=bench-encryption-key-0123 TENANTRY_LOG=warn TENANTRY_WEBHOOK_ALLOW_PRIVATE=true \
    ./target/release/tenantry >/dev/null 2>&1 &
SERVER=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.1; done
KEY=$(api POST /api/keys '{"name": "bench", "role": "service"}' | sed -E 's/.*"key":"([^"]+)".*/\1/')
rss() { awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$SERVER/status; }
EVENT='{"category":"system","event_type":"bench.tick","severity":"info","message":"tick"}'
api POST /api/webhooks "{\"url\": \"http://$RECV/hook\", \"event_types\": [\"bench.*\"]}" >/dev/null
for clients in 8 1; do
    $LG receiver --bind $RECV --idle-ms 3000 >"$WORK/recv.txt" &
    RECEIVER=$!
    sleep 0.3
    echo -n "events posted, $clients clients: "
    $LG call --url http://127.0.0.1:$PORT/api/events --token "$KEY" --clients $clients --seconds "$SECS" --body "$EVENT"
    wait $RECEIVER
    echo "   $(cat "$WORK/recv.txt" | tail -1)"
done

echo "== 10,000 deliveries pending to a dead endpoint"
INGEST() { $LG ingest --url http://127.0.0.1:$PORT --token "$KEY" --clients 64 --seconds "$SECS" --batch 1 --tag "$1"; }
echo "   RSS before: $(rss) MiB"
echo -n "   single-event ingest, no deliveries pending: "; INGEST before
api PATCH "/api/webhooks/$(api GET /api/webhooks | sed -E 's/.*"id":"([^"]+)".*/\1/')" '{"enabled": false}' >/dev/null
api POST /api/webhooks '{"url": "http://127.0.0.1:9/dead", "event_types": ["bench.*"]}' >/dev/null
$LG call --url http://127.0.0.1:$PORT/api/events --token "$KEY" --clients 4 --seconds 60 --body "$EVENT" >"$WORK/dead.txt" &
POSTER=$!
for _ in $(seq 120); do
    sleep 0.5
    n=$(sqlite3 "$WORK/data/tenantry.db" "SELECT count(*) FROM webhook_deliveries WHERE status != 'succeeded'" 2>/dev/null || echo 0)
    [ "$n" -ge 10000 ] && break
done
kill $POSTER 2>/dev/null || true; wait $POSTER 2>/dev/null || true
echo "   deliveries pending or failed: $n; RSS now: $(rss) MiB"
echo -n "   single-event ingest, with them pending: "; INGEST after
echo "   RSS after: $(rss) MiB"
