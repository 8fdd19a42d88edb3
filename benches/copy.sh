#!/usr/bin/env bash
# `tenantry copy --to` of N usage events (docs/BENCHMARKS.md, "Copy to PostgreSQL"): makes a
# migrated SQLite database with 4 tenants and N application-shaped events written directly with
# sqlite3 (UUID ids and event_ids, 5 models, both execution modes, labels, a job_id on a quarter,
# metadata on half) and their rollups in every dimension (as ingest writes them, so `tenantry
# verify` passes on it), then times the copy into a new database on the PostgreSQL cluster at
# $TENANTRY_TEST_DATABASE_URL (or /tmp/pgurl), and drops that database and the files.
# Usage: [PROFILE=release|debug] [KEEP=1] bash benches/copy.sh [events]
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
PROFILE=${PROFILE:-debug}
BASE=${TENANTRY_TEST_DATABASE_URL:-$(cat /tmp/pgurl)}
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 CLI (apt-get install sqlite3)"; exit 2; }
if [ "$PROFILE" = release ]; then cargo build --release --bin tenantry >/dev/null 2>&1; else cargo build --bin tenantry >/dev/null 2>&1; fi
BIN=./target/$PROFILE/tenantry
DIR=$(mktemp -d)
NAME=copy_bench_$$
psql "$BASE" -qc "CREATE DATABASE $NAME"
cleanup() { [ -n "${KEEP:-}" ] || { psql "$BASE" -qc "DROP DATABASE IF EXISTS $NAME"; rm -rf "$DIR"; }; }
trap cleanup EXIT
TARGET="${BASE%/*}/$NAME"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM; profile $PROFILE; $(psql "$BASE" -tAc 'SHOW server_version') fsync=$(psql "$BASE" -tAc 'SHOW fsync')"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src migrations || echo ' (modified)')"

TENANTRY_DATA_DIR=$DIR $BIN migrate >/dev/null
start=$(date +%s.%N)
sqlite3 "$DIR/tenantry.db" <<SQL
PRAGMA journal_mode = WAL;
INSERT INTO tenants (id, name, slug, plan, status, created_at, updated_at)
SELECT printf('00000000-0000-4000-8000-%012d', n), 'bench ' || n, 'bench-' || n, 'pro', 'active', 0, 0
FROM (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4);
INSERT INTO settings_versions (tenant_id, version, body, changed_by, changed_at)
SELECT id, 1, '{}', 'system', 0 FROM tenants WHERE slug LIKE 'bench-%';
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $EVENTS),
r AS (SELECT i, lower(hex(randomblob(16))) AS a, lower(hex(randomblob(16))) AS b FROM n)
INSERT INTO usage_events (id, tenant_id, event_id, ts, model, input_tokens, output_tokens,
    estimated_nanos, billed_nanos, input_price, output_price, cost_source, execution_mode, markup,
    pipeline_stage, agent_name, job_id, user_id, duration_ms, metadata, created_at,
    cache_read_tokens, cache_write_tokens, reasoning_tokens)
SELECT substr(a,1,8)||'-'||substr(a,9,4)||'-4'||substr(a,14,3)||'-8'||substr(a,18,3)||'-'||substr(a,21,12),
    printf('00000000-0000-4000-8000-%012d', 1 + i % 4),
    substr(b,1,8)||'-'||substr(b,9,4)||'-4'||substr(b,14,3)||'-8'||substr(b,18,3)||'-'||substr(b,21,12),
    1764460800000000 + i * 1000000,
    CASE i % 5 WHEN 0 THEN 'gpt-4o' WHEN 1 THEN 'gpt-4o-mini' WHEN 2 THEN 'claude-sonnet-4'
               WHEN 3 THEN 'claude-haiku-4' ELSE 'gemini-2.5-pro' END,
    150 + i % 1200, 20 + i % 300, 1000 + i % 90000, 1100 + i % 99000, 2500000000, 10000000000,
    'pricing', CASE WHEN i % 3 = 0 THEN 'byo_key' ELSE 'hosted' END, 10,
    CASE WHEN i % 2 = 0 THEN 'rank' END, 'agent-' || (i % 7),
    CASE WHEN i % 4 = 0 THEN 'job-' || (i % 50000) END, 'user-' || (i % 2000), 100 + i % 900,
    CASE WHEN i % 2 = 0 THEN '{"request":"' || i || '","note":"quoted \"x\"","uni":"日本"}' END,
    1764460800000000 + i * 1000000,
    CASE WHEN i % 3 = 0 THEN 50 ELSE 0 END, i % 5, i % 11
FROM r;
SQL
# The rollups, one INSERT per dimension (as verify groups the raw events).
sums="count(*), sum(input_tokens), sum(output_tokens), sum(estimated_nanos), sum(billed_nanos), sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens)"
cols="tenant_id, day, dim, key, events, input_tokens, output_tokens, estimated_nanos, billed_nanos, cache_read_tokens, cache_write_tokens, reasoning_tokens"
day="ts / 86400000000"
{
  echo "BEGIN;"
  echo "INSERT INTO usage_rollups ($cols) SELECT tenant_id, $day, '', '', $sums FROM usage_events GROUP BY 1, 2;"
  for d in model pipeline_stage agent_name user_id; do
    echo "INSERT INTO usage_rollups ($cols) SELECT tenant_id, $day, '$d', coalesce($d, ''), $sums FROM usage_events GROUP BY 1, 2, 4;"
  done
  for m in hosted byo_key; do
    echo "INSERT INTO usage_rollups ($cols) SELECT tenant_id, $day, 'model.$m', model, $sums FROM usage_events WHERE execution_mode = '$m' GROUP BY 1, 2, 4;"
  done
  echo "INSERT INTO usage_rollups ($cols) SELECT tenant_id, 0, 'job_id', job_id, $sums FROM usage_events WHERE job_id IS NOT NULL GROUP BY 1, 4;"
  echo "COMMIT; PRAGMA wal_checkpoint(TRUNCATE);"
} | sqlite3 "$DIR/tenantry.db" >/dev/null
echo "made $EVENTS events and $(sqlite3 "$DIR/tenantry.db" 'SELECT count(*) FROM usage_rollups') rollup rows in $(echo "$(date +%s.%N) - $start" | bc) s; $(du -m "$DIR/tenantry.db" | cut -f1) MB"
echo "load before: $(uptime | sed 's/.*load average/load average/')"
start=$(date +%s.%N)
TENANTRY_DATA_DIR=$DIR $BIN copy --to "$TARGET"
end=$(date +%s.%N)
echo "load after: $(uptime | sed 's/.*load average/load average/')"
secs=$(echo "$end - $start" | bc)
echo "copy: $secs s, $(echo "$EVENTS / $secs" | bc) events/s; PostgreSQL database $(psql "$BASE" -tAc "SELECT pg_size_pretty(pg_database_size('$NAME'))")"
