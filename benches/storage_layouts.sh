#!/usr/bin/env bash
# Leaner layouts for usage_events, measured on copies of a database benches/storage.sh kept
# (docs/BENCHMARKS.md, "Storage"). Each candidate is a migration: SQL that rebuilds the table
# (or only an index) from the stored rows, timed by `loadgen sql` (one transaction, the server's
# own bundled SQLite, then a TRUNCATE checkpoint) on a fresh copy of the database; then the
# live bytes of usage_events and its indexes (dbstat) per event.
# Usage: bash benches/storage_layouts.sh DATA_DIR [candidate...]   (default: every candidate)
#   AS_INGESTED=1 builds the indexes before copying the rows in (see rebuild): the steady-state
#   size; without it, the migration as it would run (indexes built after the copy, packed).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:?usage: benches/storage_layouts.sh DATA_DIR [candidate...]}/tenantry.db
shift
cargo build --release --bin loadgen >/dev/null 2>&1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
N=$(sqlite3 "$SRC" "SELECT count(*) FROM usage_events")

# --- the pieces a candidate is made of --------------------------------------------------------
# Column definitions and the expression each is copied with; a candidate overrides some.
ID_DEF="id TEXT NOT NULL"; ID_SEL="id"
TENANT_DEF="tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE"; TENANT_SEL="tenant_id"
EVENT_DEF="event_id TEXT"; EVENT_SEL="event_id"
SOURCE_DEF="cost_source TEXT NOT NULL CHECK (cost_source = 'client' OR cost_source = 'pricing' OR cost_source = 'unknown_model')"
SOURCE_SEL="cost_source"
MODE_DEF="execution_mode TEXT NOT NULL CHECK (execution_mode = 'hosted' OR execution_mode = 'byo_key')"
MODE_SEL="execution_mode"
CREATED_DEF="created_at INTEGER NOT NULL"; CREATED_SEL="created_at"
SEQ_DEF="seq INTEGER PRIMARY KEY"; TABLE_END=") STRICT;"
PRE=""
BY_TIME="CREATE INDEX usage_events_by_time ON usage_events (tenant_id, ts, seq);"
# The 16 bytes of a UUID's text, in SQL (unhex needs SQLite 3.41; the server's bundled one has it).
UUID_BLOB="unhex(replace(%s, '-', ''))"
UUID_GLOB="'[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'"

rebuild() {
    # AS_INGESTED: the indexes exist before the rows are copied in, in the order they were
    # recorded, so every B-tree fills the way ingest fills it (not packed, as a build after the
    # copy packs it): what the layout costs in steady state.
    [ -z "${AS_INGESTED:-}" ] || echo "DROP INDEX usage_events_by_time; DROP INDEX usage_events_by_event_id; DROP INDEX usage_events_by_job;"
    cat <<SQL
$PRE
CREATE TABLE usage_events_new (
    $SEQ_DEF,
    $ID_DEF,
    $TENANT_DEF,
    $EVENT_DEF,
    ts              INTEGER NOT NULL,
    model           TEXT NOT NULL,
    input_tokens    INTEGER NOT NULL CHECK (input_tokens >= 0),
    output_tokens   INTEGER NOT NULL CHECK (output_tokens >= 0),
    estimated_nanos INTEGER NOT NULL CHECK (estimated_nanos >= 0),
    billed_nanos    INTEGER NOT NULL CHECK (billed_nanos >= 0),
    input_price     INTEGER,
    output_price    INTEGER,
    $SOURCE_DEF,
    $MODE_DEF,
    markup          INTEGER NOT NULL,
    pipeline_stage  TEXT,
    agent_name      TEXT,
    job_id          TEXT,
    user_id         TEXT,
    duration_ms     INTEGER,
    metadata        TEXT,
    $CREATED_DEF,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0 CHECK (cache_read_tokens >= 0),
    cache_write_tokens INTEGER NOT NULL DEFAULT 0 CHECK (cache_write_tokens >= 0),
    reasoning_tokens INTEGER NOT NULL DEFAULT 0 CHECK (reasoning_tokens >= 0),
    cache_read_price INTEGER,
    cache_write_price INTEGER
$TABLE_END
$(indexes usage_events_new)
INSERT INTO usage_events_new
    SELECT seq, $ID_SEL, $TENANT_SEL, $EVENT_SEL, ts, model, input_tokens, output_tokens,
        estimated_nanos, billed_nanos, input_price, output_price, $SOURCE_SEL, $MODE_SEL, markup,
        pipeline_stage, agent_name, job_id, user_id, duration_ms, metadata, $CREATED_SEL,
        cache_read_tokens, cache_write_tokens, reasoning_tokens, cache_read_price,
        cache_write_price
    FROM usage_events ORDER BY seq;
DROP TABLE usage_events;
ALTER TABLE usage_events_new RENAME TO usage_events;
$(indexes usage_events)
SQL
}

indexes() { # the three indexes, on table $1, unless built before the copy
    [ "$1" = usage_events_new ] || [ -z "${AS_INGESTED:-}" ] || return 0
    [ "$1" = usage_events ] || [ -n "${AS_INGESTED:-}" ] || return 0
    echo "${BY_TIME//ON usage_events /ON $1 }"
    echo "CREATE UNIQUE INDEX usage_events_by_event_id ON $1 (tenant_id, event_id) WHERE event_id IS NOT NULL;"
    echo "CREATE INDEX usage_events_by_job ON $1 (tenant_id, job_id, ts) WHERE job_id IS NOT NULL;"
}

# Each candidate sets the pieces it changes (in a subshell) and prints its SQL.
id_blob() { ID_DEF="id BLOB NOT NULL CHECK (length(id) = 16)"; ID_SEL=$(printf "$UUID_BLOB" id); rebuild; }
enums_int() {
    SOURCE_DEF="cost_source INTEGER NOT NULL CHECK (cost_source BETWEEN 0 AND 2)"
    SOURCE_SEL="CASE cost_source WHEN 'pricing' THEN 0 WHEN 'client' THEN 1 ELSE 2 END"
    MODE_DEF="execution_mode INTEGER NOT NULL CHECK (execution_mode BETWEEN 0 AND 1)"
    MODE_SEL="CASE execution_mode WHEN 'hosted' THEN 0 ELSE 1 END"
    rebuild
}
created_delta() { CREATED_DEF="created_after_ts INTEGER NOT NULL"; CREATED_SEL="created_at - ts"; rebuild; }
event_id_uuid_blob() {
    # A canonical lowercase UUID event_id kept as its 16 bytes, any other kept as text (no text
    # value equals a blob, so the unique index keeps its meaning).
    EVENT_DEF="event_id ANY"
    EVENT_SEL="CASE WHEN event_id GLOB $UUID_GLOB THEN $(printf "$UUID_BLOB" event_id) ELSE event_id END"
    TABLE_END=") STRICT;"
    rebuild
}
time_index_no_seq() {
    # The rowid ends every index entry already; naming seq as a column stores it twice.
    echo "DROP INDEX usage_events_by_time;"
    echo "CREATE INDEX usage_events_by_time ON usage_events (tenant_id, ts);"
}
drop_time_index() { echo "DROP INDEX usage_events_by_time;"; }
without_rowid() {
    # The table itself in (tenant_id, ts, seq) order: the by-time index becomes the table.
    SEQ_DEF="seq INTEGER NOT NULL"; TABLE_END=", PRIMARY KEY (tenant_id, ts, seq)) STRICT, WITHOUT ROWID;"
    BY_TIME=""
    rebuild
}
tenant_number() {
    # Tenants numbered in a mapping table; events carry the number (the big refactor: measured only).
    PRE="CREATE TABLE tenant_numbers (num INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE REFERENCES tenants (id) ON DELETE CASCADE) STRICT;
INSERT INTO tenant_numbers (id) SELECT id FROM tenants ORDER BY created_at;"
    TENANT_DEF="tenant_id INTEGER NOT NULL REFERENCES tenant_numbers (num) ON DELETE CASCADE"
    TENANT_SEL="(SELECT num FROM tenant_numbers n WHERE n.id = usage_events.tenant_id)"
    rebuild
}
lean() { # what stays inside store/reads/verify/transfer
    ID_DEF="id BLOB NOT NULL CHECK (length(id) = 16)"; ID_SEL=$(printf "$UUID_BLOB" id)
    SOURCE_DEF="cost_source INTEGER NOT NULL CHECK (cost_source BETWEEN 0 AND 2)"
    SOURCE_SEL="CASE cost_source WHEN 'pricing' THEN 0 WHEN 'client' THEN 1 ELSE 2 END"
    MODE_DEF="execution_mode INTEGER NOT NULL CHECK (execution_mode BETWEEN 0 AND 1)"
    MODE_SEL="CASE execution_mode WHEN 'hosted' THEN 0 ELSE 1 END"
    EVENT_DEF="event_id ANY"
    EVENT_SEL="CASE WHEN event_id GLOB $UUID_GLOB THEN $(printf "$UUID_BLOB" event_id) ELSE event_id END"
    BY_TIME="CREATE INDEX usage_events_by_time ON usage_events (tenant_id, ts);"
    rebuild
}
lean_tenant_number() { tenant_number_pieces; lean; }
tenant_number_pieces() {
    PRE="CREATE TABLE tenant_numbers (num INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE REFERENCES tenants (id) ON DELETE CASCADE) STRICT;
INSERT INTO tenant_numbers (id) SELECT id FROM tenants ORDER BY created_at;"
    TENANT_DEF="tenant_id INTEGER NOT NULL REFERENCES tenant_numbers (num) ON DELETE CASCADE"
    TENANT_SEL="(SELECT num FROM tenant_numbers n WHERE n.id = usage_events.tenant_id)"
}
leanest() { # lean, tenant numbers, and the table clustered by (tenant, ts)
    tenant_number_pieces
    SEQ_DEF="seq INTEGER NOT NULL"; TABLE_END=", PRIMARY KEY (tenant_id, ts, seq)) STRICT, WITHOUT ROWID;"
    ID_DEF="id BLOB NOT NULL CHECK (length(id) = 16)"; ID_SEL=$(printf "$UUID_BLOB" id)
    SOURCE_DEF="cost_source INTEGER NOT NULL CHECK (cost_source BETWEEN 0 AND 2)"
    SOURCE_SEL="CASE cost_source WHEN 'pricing' THEN 0 WHEN 'client' THEN 1 ELSE 2 END"
    MODE_DEF="execution_mode INTEGER NOT NULL CHECK (execution_mode BETWEEN 0 AND 1)"
    MODE_SEL="CASE execution_mode WHEN 'hosted' THEN 0 ELSE 1 END"
    EVENT_DEF="event_id ANY"
    EVENT_SEL="CASE WHEN event_id GLOB $UUID_GLOB THEN $(printf "$UUID_BLOB" event_id) ELSE event_id END"
    BY_TIME=""
    rebuild
}
same() { rebuild; } # the same layout rebuilt: what a table rebuild costs by itself

ALL="same id_blob enums_int created_delta event_id_uuid_blob time_index_no_seq drop_time_index without_rowid tenant_number lean lean_tenant_number leanest"
CANDIDATES=${*:-$ALL}

live() { # bytes of usage_events and its indexes, and of every live page
    sqlite3 "$1" "SELECT sum(pgsize) FILTER (WHERE name = 'usage_events' OR name LIKE 'usage_events_by_%'
                                              OR name LIKE 'sqlite_autoindex_usage_events%'),
                         sum(pgsize) FROM dbstat"
}
echo "$N events in $SRC"
IFS='|' read -r base_usage base <<<"$(live "$SRC")"
# saved: live bytes against the database as ingested; vs_same: against `same`, the same layout
# through the same copy (which packs what ingest left part-filled, unless AS_INGESTED).
printf '%-20s %11s %11s %8s %8s %9s %8s %8s\n' candidate usage_B/ev live_B/ev saved vs_same migrate_s ckpt_s file_B/ev
printf '%-20s %11.1f %11.1f %8s %8s %9s %8s %8d\n' "(as ingested)" "$(echo "$base_usage / $N" | bc -l)" \
    "$(echo "$base / $N" | bc -l)" - - - - "$(( $(stat -c %s "$SRC") / N ))"
for cand in $CANDIDATES; do
    (
        "$cand" >"$WORK/$cand.sql"
        cp "$SRC" "$WORK/db"
        out=$(./target/release/loadgen sql --db "$WORK/db" --file "$WORK/$cand.sql")
        m=$(echo "$out" | sed -E 's/.* in ([0-9.]+)s, checkpoint ([0-9.]+)s.*/\1 \2/')
        IFS='|' read -r usage all <<<"$(live "$WORK/db")"
        [ "$cand" != same ] || echo "$all" >"$WORK/same"
        vs=-; [ ! -e "$WORK/same" ] || vs=$(printf '%.1f%%' "$(echo "100 * ($(cat "$WORK/same") - $all) / $(cat "$WORK/same")" | bc -l)")
        printf '%-20s %11.1f %11.1f %7.1f%% %8s %9s %8s %8d\n' "$cand" "$(echo "$usage / $N" | bc -l)" \
            "$(echo "$all / $N" | bc -l)" "$(echo "100 * ($base - $all) / $base" | bc -l)" "$vs" $m \
            "$(( $(stat -c %s "$WORK/db") / N ))"
        rm -f "$WORK/db" "$WORK/db-wal" "$WORK/db-shm"
    )
done
