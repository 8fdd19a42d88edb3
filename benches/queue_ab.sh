#!/usr/bin/env bash
# Side-by-side queue runs of two or more tenantry binaries, alternating them round by round so
# the machine's drift hits each alike. Each run: a fresh data dir, 4 pro tenants, 100,000 jobs
# enqueued in batches of 1000 (jobs/s), then 16 workers leasing and completing for 5 s with
# max_jobs 1 and again with max_jobs 10, beside GET /health with 16 clients.
# Usage: bash benches/queue_ab.sh ROUNDS BINARY...
#   e.g. cp target/release/tenantry /tmp/before; (change, rebuild)
#        bash benches/queue_ab.sh 2 /tmp/before target/release/tenantry
set -u
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 5,8p "$0"; exit 2; }
ROUNDS=$1
shift
cargo build --release --bin loadgen >/dev/null 2>&1
LG=./target/release/loadgen T=bench-admin-token-0123456789 P=18171
U=http://127.0.0.1:$P
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for round in $(seq "$ROUNDS"); do
    for bin in "$@"; do
        W=$(mktemp -d)
        TENANTRY_DATA_DIR=$W TENANTRY_BIND=127.0.0.1:$P TENANTRY_ADMIN_TOKEN=$T \
            ENCRYPTION_KEY=bench-encryption-key-0123 TENANTRY_LOG=warn ENABLE_MULTI_TENANT=true \
            ENABLE_HOSTED_QUEUE=true "$bin" >/dev/null 2>&1 &
        S=$!
        for _ in $(seq 100); do curl -sf $U/health >/dev/null && break; sleep 0.1; done
        echo "== round $round: $bin (load $(cut -d' ' -f1 /proc/loadavg))"
        $LG get --url $U/health --token $T --clients 16 --seconds 3
        $LG jobs setup --url $U --token $T --tenants 4 >/dev/null
        $LG jobs enqueue --url $U --token $T --tenants 4 --batch 1000 --jobs 100000
        $LG jobs work --url $U --token $T --workers 16 --max-jobs 1 --seconds 5
        $LG jobs work --url $U --token $T --workers 16 --max-jobs 10 --seconds 5
        kill $S
        wait $S 2>/dev/null
        rm -rf "$W"
    done
done
