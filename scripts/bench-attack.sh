#!/usr/bin/env bash
# The poller's latency (p50/p99) with and without a connection-exhaustion attack, ccs-endpoint
# and nginx in the same run on this machine, over loopback (benches/attack.rs does the polling
# and the attacks: 1,024 idle TLS/HTTP/2 connections and 256 unfinished handshakes from
# 127.0.0.2; then the spread attack, 1,100 idle TLS sockets from 20 addresses (55 each, under
# the per-client cap); each reconnecting whenever closed; polls from 127.0.0.1, a new TLS 1.2
# connection each).
#
#   scripts/bench-attack.sh
#
# ccs-endpoint runs its defaults (max_connections 1024, 64 per client, header_timeout 10s).
# nginx serves a static file of the same size with the same certificate, HTTP/2 on, 2 workers of
# 512 connections (the same 1,024 in all) and its default timeouts. Installs nginx if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ulimit -n 65536 2>/dev/null || true

cargo build --release --locked -q
cargo bench --locked --bench attack --no-run -q 2>/dev/null
BIN=$PWD/target/release/ccs-endpoint
. scripts/bench-lib.sh nginx

SVC=$(port); ADM=$(port); NGX=$(port)
"$BIN" serve --dev --dev-dir "$WORK/dev" --dev-listen 127.0.0.1:"$SVC" --dev-admin-listen 127.0.0.1:"$ADM" >"$WORK/server.log" 2>&1 &
pids+=($!)
wait_ready
BODY=$(curl -s --cacert "$WORK/dev/ca.crt" -H "X-DB-Certificate: $(cat "$WORK/dev/client.b64")" "https://localhost:$SVC/kek/ccsdemo/1")
# 2 workers x 512 connections: the same 1,024 in all as ccs-endpoint's default.
nginx_anchor "$NGX" "$BODY" 512 http2 ""

echo "ccs-endpoint $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores"
cargo bench --locked --bench attack -q -- "$WORK/dev/ca.crt" "$WORK/dev/client.b64" \
  "ccs-endpoint=127.0.0.1:$SVC" "nginx=127.0.0.1:$NGX"
echo "ccs-endpoint: $(curl -s "http://127.0.0.1:$ADM/metrics" | grep -E '^ccs_connections_refused_total' | tr '\n' ' ')"
