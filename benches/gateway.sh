#!/usr/bin/env bash
# The gateway benchmark of docs/BENCHMARKS.md: metered calls through tenantry against the
# fake provider, side by side with the same calls straight to the fake (the baseline), round
# by round so the shared machine's drift hits both alike. Client, gateway and provider share
# the machine. Usage: bash benches/gateway.sh [seconds-per-run] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}
ROUNDS=${2:-3}
cargo build --release --bin tenantry --bin loadgen --bin fake-upstream >/dev/null 2>&1
LG=./target/release/loadgen
TOKEN=bench-admin-token-0123456789
PORT=18120
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
./target/release/fake-upstream --port 0 --workers 1 >"$WORK/fake.out" &
for _ in $(seq 50); do grep -q listening "$WORK/fake.out" 2>/dev/null && break; sleep 0.1; done
FAKE=$(sed -n 's/listening on //p' "$WORK/fake.out")
TENANTRY_DATA_DIR=$WORK/data TENANTRY_BIND=127.0.0.1:$PORT TENANTRY_ADMIN_TOKEN=$TOKEN \
    ENCRYPTION_KEY=bench-encryption-key-0123 TENANTRY_LOG=warn \
    TENANTRY_UPSTREAM_OPENAI=$FAKE/v1 TENANTRY_PROVIDER_KEY_OPENAI=sk-bench-hosted-key-0123 \
    ./target/release/tenantry >/dev/null 2>&1 &
SERVER=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.1; done
# The default tenant, hosted mode; concurrency is what is measured, not its limit.
curl -sf -X PATCH http://127.0.0.1:$PORT/api/settings -H "Authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d '{"max_concurrent_calls": 100000}' >/dev/null
KEY=$(curl -sf -X POST http://127.0.0.1:$PORT/api/keys -H "Authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d '{"name": "bench", "role": "service"}' | sed -E 's/.*"key":"([^"]+)".*/\1/')
rss() { awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$SERVER/status; }
peak() { awk '/VmHWM/{printf "%.1f", $2/1024}' /proc/$SERVER/status; }

PLAIN='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}],"fake":{"prompt_tokens":120,"completion_tokens":30,"cached_tokens":40}}'
STREAM='{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}'
for round in $(seq "$ROUNDS"); do
    echo "== round $round"
    # One client: what the gateway adds to a call when nothing queues.
    echo -n "plain, direct to the fake, 1 client: "; $LG call --url $FAKE/v1/chat/completions --token x --clients 1 --seconds 3 --body "$PLAIN"
    echo -n "plain, through the gateway, 1 client: "; $LG call --url http://127.0.0.1:$PORT/v1/chat/completions --token "$KEY" --clients 1 --seconds 3 --body "$PLAIN"
    echo -n "streamed, direct to the fake, 1 client: "; $LG call --url $FAKE/v1/chat/completions --token x --clients 1 --seconds 3 --body "$STREAM"
    echo -n "streamed, through the gateway, 1 client: "; $LG call --url http://127.0.0.1:$PORT/v1/chat/completions --token "$KEY" --clients 1 --seconds 3 --body "$STREAM"
    echo -n "plain, direct to the fake, 64 clients: "; $LG call --url $FAKE/v1/chat/completions --token x --clients 64 --seconds "$SECS" --body "$PLAIN"
    echo -n "plain, through the gateway, 64 clients: "; $LG call --url http://127.0.0.1:$PORT/v1/chat/completions --token "$KEY" --clients 64 --seconds "$SECS" --body "$PLAIN"
    echo "   tenantry RSS after: $(rss) MiB, peak so far $(peak) MiB"
    echo -n "streamed, direct to the fake, 64 clients: "; $LG call --url $FAKE/v1/chat/completions --token x --clients 64 --seconds "$SECS" --body "$STREAM"
    echo -n "streamed, through the gateway, 64 clients: "; $LG call --url http://127.0.0.1:$PORT/v1/chat/completions --token "$KEY" --clients 64 --seconds "$SECS" --body "$STREAM"
    echo "   tenantry RSS after: $(rss) MiB, peak so far $(peak) MiB"
done
echo "== 256 streamed calls held open (each 100 chunks 50 ms apart, 5 s)"
HELD='{"model":"gpt-4o-mini","stream":true,"messages":[],"fake":{"chunks":100,"chunk_delay_ms":50}}'
$LG call --url http://127.0.0.1:$PORT/v1/chat/completions --token "$KEY" --clients 256 --seconds 12 --body "$HELD" &
LOAD=$!
max=0
for _ in $(seq 20); do
    sleep 0.5
    inflight=$(curl -sf http://127.0.0.1:$PORT/api/gateway/calls -H "Authorization: Bearer $TOKEN" | sed -E 's/.*"in_flight":([0-9]+).*/\1/')
    [ "${inflight:-0}" -gt "$max" ] && max=$inflight
done
wait $LOAD
echo "   most calls in flight seen: $max; tenantry RSS now $(rss) MiB, peak (VmHWM) $(peak) MiB"
curl -sf "http://127.0.0.1:$PORT/api/usage/stats" -H "Authorization: Bearer $TOKEN" | sed -E 's/.*"totals":\{"events":([0-9]+).*/   usage events recorded: \1/'
