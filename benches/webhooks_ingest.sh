#!/usr/bin/env bash
# Ingest while every tenant crosses its usage limit, with an instance webhook endpoint
# subscribed to `limit.*` (pointing at `loadgen receiver`) and without one, alternating round by
# round so the machine's drift hits both alike (see benches/ab.sh). Each run gets a fresh data
# dir, CLIENTS tenants (each ingest client posts as its own tenant's service key) and a daily
# token limit per tenant that the first events of the run cross (and a rate limit high enough
# not to refuse any, as the admin token used by ab.sh is never limited): every tenant records
# limit.warning and limit.exceeded once, and with the endpoint each becomes a delivery.
# Usage: bash benches/webhooks_ingest.sh BATCH CLIENTS SECONDS ROUNDS [BINARY]
#   e.g. bash benches/webhooks_ingest.sh 1 64 8 4
# Prints, per mode, the events/s and the p99 of every round, and the deliveries received.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] || { sed -n 8,9p "$0"; exit 2; }
BATCH=$1 CLIENTS=$2 SECS=$3 ROUNDS=$4 BIN=${5:-target/release/tenantry}
cargo build --release --bin tenantry --bin loadgen >/dev/null 2>&1
LG=./target/release/loadgen
TOKEN=bench-admin-token-0123456789
PORT=18113
RECV=127.0.0.1:18114
# Loadgen's events use 150 to 1,350 tokens each: a tenant passes 80% of this within its first
# 40 or so events and 100% soon after.
LIMIT=20000
OUT=$(mktemp)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -f "$OUT"' EXIT
api() { curl -sf -X "$1" "http://127.0.0.1:$PORT$2" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"}; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "binary: $BIN; $CLIENTS tenants, daily_tokens $LIMIT each; batch $BATCH, $CLIENTS clients, ${SECS}s, $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
    for mode in webhook none; do
        dir=$(mktemp -d)
        ENABLE_MULTI_TENANT=true TENANTRY_DATA_DIR=$dir TENANTRY_BIND=127.0.0.1:$PORT \
            TENANTRY_ADMIN_TOKEN=$TOKEN ENCRYPTION_KEY=bench-encryption-key-0123 TENANTRY_LOG=warn \
            TENANTRY_WEBHOOK_ALLOW_PRIVATE=true "$BIN" >/dev/null 2>&1 &
        server=$!
        for _ in $(seq 50); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.1; done
        keys=()
        for t in $(seq "$CLIENTS"); do
            api POST /api/tenants "{\"name\": \"tenant-$t\", \"slug\": \"tenant-$t\"}" >/dev/null
            api PATCH "/api/tenant/tenant-$t/settings" "{\"limits\": {\"daily_tokens\": $LIMIT}, \"rate_limit_per_minute\": 1000000}" >/dev/null
            keys+=("$(api POST "/api/tenant/tenant-$t/keys" '{"name": "bench", "role": "service"}' | sed -E 's/.*"key":"([^"]+)".*/\1/')")
        done
        receiver=
        if [ $mode = webhook ]; then
            $LG receiver --bind $RECV --idle-ms 8000 >"$OUT.recv" &
            receiver=$!
            sleep 0.3
            api POST /api/webhooks "{\"url\": \"http://$RECV/hook\", \"scope\": \"instance\", \"event_types\": [\"limit.*\"]}" >/dev/null
        fi
        line=$($LG ingest --url http://127.0.0.1:$PORT --token "$(IFS=,; echo "${keys[*]}")" \
            --clients "$CLIENTS" --seconds "$SECS" --batch "$BATCH" --tag "r$round")
        got=-
        if [ -n "$receiver" ]; then
            # It exits 8 s after the last delivery (longer than the first retry's wait, should
            # an attempt fail under this load); one that got none is killed (it keeps waiting
            # for a first delivery through SIGTERM).
            for _ in $(seq 100); do kill -0 "$receiver" 2>/dev/null || break; sleep 0.2; done
            kill -9 "$receiver" 2>/dev/null || true; wait "$receiver" 2>/dev/null || true
            got=$(sed -nE 's/receiver: ([0-9]+) deliveries.*/\1/p' "$OUT.recv")
        fi
        crossings=$(sqlite3 "$dir/tenantry.db" "SELECT count(*) FROM events WHERE event_type LIKE 'limit.%'" 2>/dev/null || echo "?")
        failed=$(sqlite3 "$dir/tenantry.db" "SELECT count(*) FROM webhook_deliveries WHERE attempts > 1 OR status != 'succeeded'" 2>/dev/null || echo "?")
        # "... = N req/s, E events/s; latency p50 A ms, p99 B ms, ..." -> "mode E B got crossings failed"
        echo "$mode $(echo "$line" | sed -E 's/.*, ([0-9]+) events\/s; latency p50 [0-9.]+ ms, p99 ([0-9.]+) ms.*/\1 \2/') $got $crossings $failed" >>"$OUT"
        kill "$server"; wait "$server" 2>/dev/null || true
        rm -rf "$dir"
    done
done
for mode in webhook none; do
    echo "$mode: events/s $(awk -v m=$mode '$1 == m {printf "%s ", $2}' "$OUT")| p99 ms $(awk -v m=$mode '$1 == m {printf "%s ", $3}' "$OUT")| limit events recorded $(awk -v m=$mode '$1 == m {printf "%s ", $5}' "$OUT")| deliveries received $(awk -v m=$mode '$1 == m {printf "%s ", $4}' "$OUT")| of them retried or not yet delivered $(awk -v m=$mode '$1 == m {printf "%s ", $6}' "$OUT")"
done
