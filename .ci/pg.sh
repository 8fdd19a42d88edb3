#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and benchmarks: initdb in a temporary directory
# as a non-root user (initdb refuses root), listening on 127.0.0.1 at a free port with its
# socket in that directory. Prints `export TENANTRY_TEST_DATABASE_URL=...` and
# `export TENANTRY_PG_DIR=...` for `eval`; `.ci/pg.sh stop DIR` stops it and removes DIR.
#
#   eval "$(bash .ci/pg.sh start)"        # fsync off: for tests
#   eval "$(bash .ci/pg.sh start fsync)"  # fsync on: for benchmarks
set -euo pipefail

bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -z "$d" ]; then
        echo "pg.sh: no PostgreSQL server (apt-get install postgresql)" >&2
        exit 1
    fi
    echo "$d"
}

case "${1:-start}" in
start)
    BIN=$(bindir)
    DIR=$(mktemp -d /tmp/tenantry-pg.XXXXXX)
    chmod 755 "$DIR"
    RUN_AS=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$DIR"
        RUN_AS=(runuser -u postgres --)
    fi
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${RUN_AS[@]}" "$BIN/initdb" -D "$DIR/data" -U tenantry --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
    FSYNC=off
    [ "${2:-}" = fsync ] && FSYNC=on
    # max_connections: every test server opens a pool; tests run in parallel.
    "${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=$FSYNC -c max_connections=400 -c shared_buffers=256MB" \
        start >/dev/null || { cat "$DIR/server.log" >&2; exit 1; }
    echo "export TENANTRY_TEST_DATABASE_URL=postgres://tenantry@127.0.0.1:$PORT/postgres"
    echo "export TENANTRY_PG_DIR=$DIR"
    ;;
stop)
    DIR=${2:?usage: pg.sh stop DIR}
    BIN=$(bindir)
    RUN_AS=()
    [ "$(id -u)" = 0 ] && RUN_AS=(runuser -u postgres --)
    "${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
    ;;
*)
    echo "usage: pg.sh start [fsync] | stop DIR" >&2
    exit 2
    ;;
esac
