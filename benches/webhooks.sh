#!/usr/bin/env bash
# The webhook benchmarks of docs/BENCHMARKS.md, for one or more tenantry binaries side by side
# (each scenario runs every binary in turn, on a fresh data dir):
#  - deliveries per second to a local receiver and the delay from an event to its delivery,
#    while events are posted (8 clients, then 1), to one endpoint and then to 4 endpoints
#    subscribed to the same events (4 deliveries per event);
#  - a backlog drained: the receiver is stopped (SIGSTOP) while events are posted for a few
#    seconds, then resumed; its rate is the worker's with nothing else running (the delays
#    there include the stop and mean nothing);
#  - 10,000 deliveries pending to a dead endpoint, with the server's RSS and single-event
#    ingest beside a run without them.
# Usage: bash benches/webhooks.sh [seconds-per-run] [BINARY...]   (default: target/release/tenantry)
#   e.g. cp target/release/tenantry /tmp/before; (change, rebuild)
#        bash benches/webhooks.sh 8 /tmp/before target/release/tenantry
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}
shift || true
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=(target/release/tenantry)
cargo build --release --bin tenantry --bin loadgen >/dev/null 2>&1
LG=./target/release/loadgen
TOKEN=bench-admin-token-0123456789
PORT=18140
RECV=127.0.0.1:18141
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
api() { curl -sf -X "$1" "http://127.0.0.1:$PORT$2" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"}; }
EVENT='{"category":"system","event_type":"bench.tick","severity":"info","message":"tick"}'

# start BINARY ENDPOINTS: a fresh server with ENDPOINTS endpoints on the receiver; sets SERVER, KEY.
start() {
    rm -rf "$WORK/data"
    TENANTRY_DATA_DIR=$WORK/data TENANTRY_BIND=127.0.0.1:$PORT TENANTRY_ADMIN_TOKEN=$TOKEN \
        ENCRYPTION_KEY=bench-encryption-key-0123 TENANTRY_LOG=warn TENANTRY_WEBHOOK_ALLOW_PRIVATE=true \
        "$1" >/dev/null 2>&1 &
    SERVER=$!
    for _ in $(seq 50); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.1; done
    KEY=$(api POST /api/keys '{"name": "bench", "role": "service"}' | sed -E 's/.*"key":"([^"]+)".*/\1/')
    for i in $(seq "$2"); do
        api POST /api/webhooks "{\"url\": \"http://$RECV/hook$i\", \"event_types\": [\"bench.*\"]}" >/dev/null
    done
}
stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; }

# deliver ENDPOINTS CLIENTS SECONDS [drain]: posts events, prints what was posted and received.
deliver() {
    $LG receiver --bind $RECV --idle-ms 3000 >"$WORK/recv.txt" &
    local receiver=$!
    sleep 0.3
    [ "${4:-}" = drain ] && kill -STOP $receiver
    local posted
    posted=$($LG call --url http://127.0.0.1:$PORT/api/events --token "$KEY" --clients "$2" --seconds "$3" --body "$EVENT")
    [ "${4:-}" = drain ] && kill -CONT $receiver
    wait $receiver
    echo "   posted: ${posted#call: }"
    echo "   $(tail -1 "$WORK/recv.txt")"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average $(cut -d' ' -f1-3 /proc/loadavg)"
for run in "1 8" "1 1" "4 8"; do
    set -- $run
    for bin in "${BINS[@]}"; do
        echo "== $bin: $1 endpoint(s), events posted by $2 client(s) for ${SECS}s"
        start "$bin" "$1"
        deliver "$1" "$2" "$SECS"
        stop
    done
done
for n in 1 4; do
    for bin in "${BINS[@]}"; do
        echo "== $bin: $n endpoint(s), a backlog of 5 s of events (8 clients) drained with nothing else running"
        start "$bin" "$n"
        deliver "$n" 8 5 drain
        stop
    done
done

rss() { awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$SERVER/status; }
INGEST() { $LG ingest --url http://127.0.0.1:$PORT --token "$KEY" --clients 64 --seconds "$SECS" --batch 1 --tag "$1"; }
for bin in "${BINS[@]}"; do
    echo "== $bin: 10,000 deliveries pending to a dead endpoint"
    start "$bin" 0
    echo "   RSS before: $(rss) MiB"
    echo -n "   single-event ingest, no deliveries pending: "; INGEST before
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
    stop
done
