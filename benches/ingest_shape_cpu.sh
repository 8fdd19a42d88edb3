#!/usr/bin/env bash
# Server CPU per thread for 100,000 events of each shape given (docs/BENCHMARKS.md, "Storage", last
# paragraph): "plain" is loadgen's default events, "realistic [loadgen options]" the application-
# shaped ones, e.g. "realistic --without timestamp". CPU ticks (10 ms) vary less than events/s here.
# Usage: bash benches/ingest_shape_cpu.sh realistic plain "realistic --sequential-ids" ...
set -u

cd "$(dirname "$0")/.."
cargo build --release --bin tenantry --bin loadgen >/dev/null 2>&1
T=bench-admin-token-0123456789
for mode in "$@"; do
  D=$(mktemp -d)
  TENANTRY_DATA_DIR=$D TENANTRY_BIND=127.0.0.1:18124 TENANTRY_ADMIN_TOKEN=$T ENCRYPTION_KEY=bench-encryption-key-0123 ENABLE_MULTI_TENANT=true TENANTRY_LOG=warn ./target/release/tenantry >/dev/null 2>&1 &
  SP=$!
  for _ in $(seq 50); do curl -sf http://127.0.0.1:18124/health >/dev/null && break; sleep 0.1; done
  curl -sf -X POST localhost:18124/api/tenants -H "Authorization: Bearer $T" -H 'Content-Type: application/json' -d '{"name":"acme","slug":"acme","plan":"enterprise","settings":{"rate_limit_per_minute":1000000}}' >/dev/null
  K=$(curl -sf -X POST localhost:18124/api/tenant/acme/keys -H "Authorization: Bearer $T" -H 'Content-Type: application/json' -d '{"name":"bench","role":"owner"}' | sed 's/.*"key":"\([^"]*\)".*/\1/')
  snap() { for t in /proc/$SP/task/*; do echo "$(cat $t/comm | tr ' ' _) $(awk '{print $14+$15}' $t/stat)"; done | awk '{a[$1]+=$2} END {for (k in a) print k, a[k]}' | sort; }
  snap > $D/before
  if [ "$mode" = plain ]; then A=""; else A="--realistic ${mode#realistic}"; fi
  r=$(./target/release/loadgen ingest --url http://127.0.0.1:18124 --token $K --clients 4 --batch 100 --requests 1000 $A --tag c)
  snap > $D/after
  echo "[$mode]: $(echo $r | sed -E 's/.*= [0-9]+ req\/s, ([0-9]+ events\/s).*/\1/'); server CPU (ticks of 10 ms) by thread: $(join $D/before $D/after | awk '{d=$3-$2; if (d>0) printf "%s %d, ", $1, d}')"
  kill $SP; wait $SP 2>/dev/null; rm -rf $D
done
