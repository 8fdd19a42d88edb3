#!/usr/bin/env bash
# The usage writers side by side, without HTTP (src/bin/writerbench.rs): SQLite's writer, a raw
# PostgreSQL baseline (each request one multi-row INSERT and its own COMMIT: no rollups, totals
# or limits), and the PostgreSQL writer with one and two replicas' writers on one database,
# alternating round by round. PostgreSQL is a throwaway cluster with fsync ON (.ci/pg.sh), on
# the same machine.
# Usage: bash benches/pg_writer.sh BATCH CLIENTS SECONDS ROUNDS
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] || { sed -n 7p "$0"; exit 2; }
BATCH=$1 CLIENTS=$2 SECS=$3 ROUNDS=$4
cargo build --release --bin writerbench >/dev/null 2>&1
eval "$(bash .ci/pg.sh start fsync)"
trap 'bash .ci/pg.sh stop "$TENANTRY_PG_DIR"' EXIT
BASE=${TENANTRY_TEST_DATABASE_URL%/*}
fresh() {
    local name="bench_$(date +%s%N)"
    psql -q "$TENANTRY_TEST_DATABASE_URL" -c "CREATE DATABASE $name" >/dev/null
    echo "$BASE/$name"
}
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD)"
for round in $(seq "$ROUNDS"); do
    echo "round $round"
    ./target/release/writerbench sqlite "$CLIENTS" "$BATCH" "$SECS"
    ./target/release/writerbench raw-postgres "$(fresh)" "$CLIENTS" "$BATCH" "$SECS"
    ./target/release/writerbench postgres "$(fresh)" 1 "$CLIENTS" "$BATCH" "$SECS"
    ./target/release/writerbench postgres "$(fresh)" 2 "$CLIENTS" "$BATCH" "$SECS"
done
