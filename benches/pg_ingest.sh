#!/usr/bin/env bash
# HTTP ingest on PostgreSQL with one and with two replicas on one
# database, against SQLite, alternating round by round on this machine. PostgreSQL is a
# throwaway cluster with fsync ON (.ci/pg.sh) sharing the same cores. With two replicas the
# clients are split between them (two load generators at once; their events/s are added).
# With TENANTS=N in the environment, the load is spread over N tenants (one service key each,
# client c using tenant c mod N) instead of the default tenant.
# Usage: bash benches/pg_ingest.sh BATCH CLIENTS SECONDS ROUNDS [TENANTRY_BIN LOADGEN_BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] || { sed -n 6p "$0"; exit 2; }
BATCH=$1 CLIENTS=$2 SECS=$3 ROUNDS=$4
BIN=${5:-./target/release/tenantry} LG=${6:-./target/release/loadgen}
[ $# -ge 6 ] || cargo build --release --bin tenantry --bin loadgen >/dev/null 2>&1
TOKEN=bench-admin-token-0123456789
TENANTS=${TENANTS:-0}
MT=false; [ "$TENANTS" -gt 0 ] && MT=true
eval "$(bash .ci/pg.sh start fsync)"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; bash .ci/pg.sh stop "$TENANTRY_PG_DIR"; rm -rf "$WORK"' EXIT
BASE=${TENANTRY_TEST_DATABASE_URL%/*}
serve() { # $1 port, $2 data dir, $3 database URL or ""
    if [ -n "$3" ]; then
        TENANTRY_DATABASE_URL=$3 TENANTRY_DATA_DIR=$2 \
            ENABLE_MULTI_TENANT=$MT TENANTRY_BIND=127.0.0.1:$1 TENANTRY_ADMIN_TOKEN=$TOKEN \
            ENCRYPTION_KEY=bench-encryption-key-0123 TENANTRY_LOG=warn "$BIN" >/dev/null 2>&1 &
    else
        TENANTRY_DATA_DIR=$2 ENABLE_MULTI_TENANT=$MT TENANTRY_BIND=127.0.0.1:$1 TENANTRY_ADMIN_TOKEN=$TOKEN \
            ENCRYPTION_KEY=bench-encryption-key-0123 TENANTRY_LOG=warn "$BIN" >/dev/null 2>&1 &
    fi
    echo $!
    for _ in $(seq 100); do curl -sf http://127.0.0.1:$1/health >/dev/null && return; sleep 0.1; done
}
# Creates the tenants and their service keys through port $1 (once per database); sets KEYS.
KEYS=$TOKEN
tenants() {
    [ "$TENANTS" -gt 0 ] || return 0
    local keys=() i
    for i in $(seq "$TENANTS"); do
        curl -sf -X POST http://127.0.0.1:$1/api/tenants -H "Authorization: Bearer $TOKEN" \
            -H 'content-type: application/json' -d "{\"name\":\"bench$i\",\"slug\":\"bench-$i\"}" >/dev/null
        keys+=("$(curl -sf -X POST http://127.0.0.1:$1/api/tenant/bench-$i/keys -H "Authorization: Bearer $TOKEN" \
            -H 'content-type: application/json' -d '{"name":"bench","role":"service"}' \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')")
        # The load generator, not the plan's rate limit, is what this measures.
        curl -sf -X PATCH http://127.0.0.1:$1/api/tenant/bench-$i/settings -H "Authorization: Bearer $TOKEN" \
            -H 'content-type: application/json' -d '{"rate_limit_per_minute": 1000000}' >/dev/null
    done
    KEYS=$(IFS=,; echo "${keys[*]}")
}
ingest() { # $1 port, $2 clients, $3 tag -> "events/s p99"
    "$LG" ingest --url http://127.0.0.1:$1 --token "$KEYS" --clients "$2" --seconds "$SECS" \
        --batch "$BATCH" --tag "$3" \
        | sed -E 's/.*, ([0-9]+) events\/s; latency p50 [0-9.]+ ms, p99 ([0-9.]+) ms.*/\1 \2/'
}
fresh() {
    local name="bench_$(date +%s%N)"
    psql -q "$TENANTRY_TEST_DATABASE_URL" -c "CREATE DATABASE $name" >/dev/null
    echo "$BASE/$name"
}
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); batch $BATCH, $CLIENTS clients, ${SECS}s, tenants $TENANTS; $("$BIN" --version 2>/dev/null || true)"
for round in $(seq "$ROUNDS"); do
    dir=$(mktemp -d -p "$WORK"); pid=$(serve 18301 "$dir" ""); tenants 18301
    echo "round $round sqlite:           $(ingest 18301 "$CLIENTS" "s$round")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    url=$(fresh); dir=$(mktemp -d -p "$WORK"); pid=$(serve 18302 "$dir" "$url"); tenants 18302
    echo "round $round postgres 1 replica: $(ingest 18302 "$CLIENTS" "p$round")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    url=$(fresh)
    a=$(serve 18303 "$(mktemp -d -p "$WORK")" "$url"); tenants 18303
    b=$(serve 18304 "$(mktemp -d -p "$WORK")" "$url")
    half=$((CLIENTS / 2))
    ingest 18303 "$half" "a$round" >"$WORK/a" & ia=$!
    ingest 18304 "$half" "b$round" >"$WORK/b" & ib=$!
    wait $ia $ib
    read -r ea pa <"$WORK/a"; read -r eb pb <"$WORK/b"
    echo "round $round postgres 2 replicas: $((ea + eb)) (p99 $pa / $pb ms)"
    kill "$a" "$b"; wait "$a" "$b" 2>/dev/null || true
done
