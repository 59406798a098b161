#!/usr/bin/env bash
# The poller's latency (p50/p99) with and without a connection-exhaustion attack, ccs-endpoint
# and nginx in the same run on this machine, over loopback (benches/attack.rs does the polling
# and the attack: 1,024 idle TLS/HTTP/2 connections and 256 unfinished handshakes from
# 127.0.0.2, reconnecting whenever closed; polls from 127.0.0.1, a new TLS 1.2 connection each).
#
#   scripts/bench-attack.sh
#
# ccs-endpoint runs its defaults (max_connections 1024, 64 per client, header_timeout 10s).
# nginx serves a static file of the same size with the same certificate, HTTP/2 on, 2 workers of
# 512 connections (the same 1,024 in all) and its default timeouts. Installs nginx if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q nginx
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
. scripts/nginx-anchor.sh
ulimit -n 65536 2>/dev/null || true

cargo build --release --locked -q
cargo bench --locked --bench attack --no-run -q 2>/dev/null
BIN=$PWD/target/release/ccs-endpoint
WORK=$(mktemp -d)
chmod 755 "$WORK"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

SVC=$(port); ADM=$(port); NGX=$(port)
"$BIN" serve --dev --dev-dir "$WORK/dev" --dev-listen 127.0.0.1:"$SVC" --dev-admin-listen 127.0.0.1:"$ADM" >"$WORK/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
BODY=$(curl -s --cacert "$WORK/dev/ca.crt" -H "X-DB-Certificate: $(cat "$WORK/dev/client.b64")" "https://localhost:$SVC/kek/ccsdemo/1")
# 2 workers x 512 connections: the same 1,024 in all as ccs-endpoint's default.
nginx_anchor "$WORK" "$NGX" "$BODY" 512 http2 ""

echo "ccs-endpoint $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores"
cargo bench --locked --bench attack -q -- "$WORK/dev/ca.crt" "$WORK/dev/client.b64" \
  "ccs-endpoint=127.0.0.1:$SVC" "nginx=127.0.0.1:$NGX"
echo "ccs-endpoint: $(curl -s "http://127.0.0.1:$ADM/metrics" | grep -E '^ccs_connections_refused_total' | tr '\n' ' ')"
