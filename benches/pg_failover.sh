#!/usr/bin/env bash
# Failover: two replicas on one PostgreSQL database behind nginx (Debian's; it retries a request
# on the other replica when the connection to one fails, POSTs included: ingest is idempotent
# by event_id), clients ingesting through nginx, and `kill -9` of one replica halfway. Prints
# the load generator's line (its error count is the requests the clients lost) and checks every
# acknowledged event is stored.
# Usage: bash benches/pg_failover.sh BATCH CLIENTS SECONDS [TENANTRY_BIN LOADGEN_BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 7p "$0"; exit 2; }
BATCH=$1 CLIENTS=$2 SECS=$3
BIN=${4:-./target/release/tenantry} LG=${5:-./target/release/loadgen}
[ $# -ge 5 ] || cargo build --release --bin tenantry --bin loadgen >/dev/null 2>&1
command -v nginx >/dev/null || { echo "needs nginx (apt-get install nginx-light)" >&2; exit 1; }
TOKEN=bench-admin-token-0123456789
eval "$(bash .ci/pg.sh start fsync)"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; bash .ci/pg.sh stop "$TENANTRY_PG_DIR"; rm -rf "$WORK"' EXIT
URL=${TENANTRY_TEST_DATABASE_URL%/*}/failover
psql -q "$TENANTRY_TEST_DATABASE_URL" -c "CREATE DATABASE failover"
serve() { # $1 port
    TENANTRY_DATABASE_URL=$URL TENANTRY_DATA_DIR=$(mktemp -d -p "$WORK") \
        TENANTRY_BIND=127.0.0.1:$1 TENANTRY_ADMIN_TOKEN=$TOKEN ENCRYPTION_KEY=bench-encryption-key-0123 \
        TENANTRY_LOG=warn "$BIN" >/dev/null 2>&1 &
    echo $!
    for _ in $(seq 100); do curl -sf http://127.0.0.1:$1/health >/dev/null && return; sleep 0.1; done
}
A=$(serve 18401); B=$(serve 18402)
mkdir -p "$WORK/logs"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    # Bodies stay in memory: the workers (nobody) cannot write the temp dir this script makes.
    client_body_buffer_size 2m;
    proxy_buffering off;
    client_body_temp_path $WORK/body;
    proxy_temp_path $WORK/proxy;
    upstream tenantry {
        server 127.0.0.1:18401 max_fails=1 fail_timeout=10s;
        server 127.0.0.1:18402 max_fails=1 fail_timeout=10s;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:18400;
        location / {
            proxy_pass http://tenantry;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries 2;
        }
    }
}
CONF
nginx -p "$WORK" -c "$WORK/nginx.conf"
sleep 0.5
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); batch $BATCH, $CLIENTS clients, ${SECS}s; kill -9 of one replica at $((SECS / 2))s"
"$LG" ingest --url http://127.0.0.1:18400 --token $TOKEN --clients "$CLIENTS" --seconds "$SECS" \
    --batch "$BATCH" --tag failover >"$WORK/lg" &
LGPID=$!
sleep $((SECS / 2))
kill -9 "$A"
wait $LGPID
cat "$WORK/lg"
stored=$(psql -tA "$URL" -c "SELECT count(*) FROM usage_events")
echo "events stored: $stored"
grep -c "upstream prematurely closed\|Connection refused\|connect() failed" "$WORK/logs/error.log" | sed 's/^/nginx errors logged (retried on the other replica): /' || true
kill "$B"
