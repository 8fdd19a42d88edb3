#!/usr/bin/env bash
# Bytes on disk per stored usage event (docs/BENCHMARKS.md, "Storage"): starts the release server
# on a fresh data dir, ingests N application-shaped events (`loadgen ingest --realistic`: UUID
# event_ids, client timestamps, labels, a job_id on a quarter, metadata on half) in batches of
# 100 spread over 4 tenants, stops it, checkpoints, and reports the files, the bytes per event,
# each table's and index's share (sqlite3's dbstat) and each column's bytes in the row.
# Usage: [PLAIN=1] [LG_ARGS=...] bash benches/storage.sh [events] [keep-dir]
#   events: default 1000000; keep-dir: where to leave the database (default: a temp dir, removed),
#   which benches/storage_layouts.sh then measures the leaner layouts on. PLAIN=1 sends loadgen's
#   default events instead (short event ids, three labels, no job_id, duration or metadata);
#   LG_ARGS are added to `loadgen ingest` (e.g. "--without job_id,metadata" or "--sequential-ids").
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
KEEP=${2:-}
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 CLI (apt-get install sqlite3)"; exit 2; }
cargo build --release --bin tenantry --bin loadgen >/dev/null 2>&1
LG=./target/release/loadgen
TOKEN=bench-admin-token-0123456789
PORT=18120
URL=http://127.0.0.1:$PORT
if [ -n "$KEEP" ]; then DIR=$KEEP; rm -rf "$DIR"; mkdir -p "$DIR"; else DIR=$(mktemp -d); fi
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "$KEEP" ] || rm -rf "$DIR"' EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); sqlite3 $(sqlite3 --version | cut -d' ' -f1)"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src migrations || echo ' (modified)')"

TENANTRY_DATA_DIR=$DIR TENANTRY_BIND=127.0.0.1:$PORT TENANTRY_ADMIN_TOKEN=$TOKEN \
    ENCRYPTION_KEY=bench-encryption-key-0123 ENABLE_MULTI_TENANT=true TENANTRY_LOG=warn \
    ./target/release/tenantry >/dev/null 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -sf $URL/health >/dev/null && break; sleep 0.1; done

key() { # an owner key of a fresh enterprise tenant with no rate limit to speak of
    curl -sf -X POST "$URL/api/tenants" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d "{\"name\":\"$1\",\"slug\":\"$1\",\"plan\":\"enterprise\",\"settings\":{\"rate_limit_per_minute\":1000000}}" >/dev/null
    curl -sf -X POST "$URL/api/tenant/$1/keys" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d '{"name":"bench","role":"owner"}' | sed 's/.*"key":"\([^"]*\)".*/\1/'
}
KEYS=$(for t in acme globex initech umbrella; do key "$t"; echo; done | paste -sd,)
[ "$(echo "$KEYS" | tr , '\n' | grep -c '^tk_')" = 4 ] || { echo "could not create the tenants' keys"; exit 1; }

SHAPE=--realistic; [ -z "${PLAIN:-}" ] || SHAPE=
echo "== ingest: $EVENTS ${SHAPE:+application-shaped }events, batches of 100, 4 clients over 4 tenants"
$LG ingest --url $URL --token "$KEYS" --clients 4 --batch 100 --requests $((EVENTS / 100)) $SHAPE ${LG_ARGS:-} --tag storage
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true

DB=$DIR/tenantry.db
q() { sqlite3 "$DB" "$@"; }
q "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
N=$(q "SELECT count(*) FROM usage_events")
files=$(( $(stat -c %s "$DB") + $( [ -e "$DB-wal" ] && stat -c %s "$DB-wal" || echo 0) ))
echo "== on disk after a checkpoint: $N events"
ls -l "$DIR" | awk 'NR > 1 {print "  " $5 "\t" $9}'
echo "database + WAL: $files bytes = $((files / N)) bytes/event (page size $(q 'PRAGMA page_size'), free pages $(q 'PRAGMA freelist_count'))"

echo "== per table and index (dbstat): bytes, bytes/event, fill"
q "SELECT printf('  %-34s %12d %8.1f  %3d%%', name, sum(pgsize), sum(pgsize) * 1.0 / $N,
             100 * sum(pgsize - unused) / sum(pgsize))
   FROM dbstat GROUP BY name HAVING sum(pgsize) > 65536 ORDER BY sum(pgsize) DESC"
q "SELECT printf('  %-34s %12d %8.1f', 'all usage_events + indexes', sum(pgsize), sum(pgsize) * 1.0 / $N)
   FROM dbstat WHERE name = 'usage_events' OR name LIKE 'usage_events_by_%'"

echo "== per column of usage_events: bytes in the row (value + its header byte), averaged over events"
# The record stores each value by its type: NULL, 0 and 1 in no bytes, other integers in
# 1, 2, 3, 4, 6 or 8 bytes by magnitude, text by its length; plus a serial-type byte per column
# in the record header (two for text longer than 57 bytes). seq, the rowid, is kept outside the
# record as a varint in the cell header.
size() {
    echo "(CASE typeof($1) WHEN 'null' THEN 1 WHEN 'integer' THEN 1 + CASE
        WHEN $1 IN (0, 1) THEN 0 WHEN $1 BETWEEN -128 AND 127 THEN 1
        WHEN $1 BETWEEN -32768 AND 32767 THEN 2 WHEN $1 BETWEEN -8388608 AND 8388607 THEN 3
        WHEN $1 BETWEEN -2147483648 AND 2147483647 THEN 4
        WHEN $1 BETWEEN -140737488355328 AND 140737488355327 THEN 6 ELSE 8 END
        WHEN 'real' THEN 9 ELSE length(CAST($1 AS BLOB)) + CASE WHEN length(CAST($1 AS BLOB)) > 57 THEN 2 ELSE 1 END END)" | tr -s '\n ' ' '
}
cols=$(q "SELECT name FROM pragma_table_info('usage_events') WHERE name <> 'seq' ORDER BY cid")
sel=$(for c in $cols; do echo "printf('  %-20s %6.1f', '$c', avg($(size "$c")))"; done | paste -sd'|' | sed "s/|/ || char(10) || /g")
q "SELECT $sel FROM usage_events"
q "SELECT printf('  %-20s %6.1f  (all columns; seq as rowid: %.1f more)', 'row total', avg($(for c in $cols; do size "$c"; echo; done | paste -sd+)),
             avg(CASE WHEN seq < 128 THEN 1 WHEN seq < 16384 THEN 2 WHEN seq < 2097152 THEN 3 ELSE 4 END))
   FROM usage_events"
[ -z "$KEEP" ] || echo "database kept in $DIR"
