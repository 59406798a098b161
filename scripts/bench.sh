#!/usr/bin/env bash
# Load benchmark of ccs-endpoint against nginx, in one run on this machine, over loopback.
#
#   scripts/bench.sh                 # DURATION=10s CONNS=32 by default
#   BIN=/tmp/old/ccs-endpoint scripts/bench.sh   # another build, same method
#
# nginx serves a static JSON file of the same size over TLS with the same server certificate:
# no certificate check, no RSA, so it is the ceiling of the transport. Both get the same load
# from wrk (one thread): keep-alive, then a new TLS connection per request (Connection: close,
# as the SaaS poller does). Printed: requests/s, p99 latency, ccs-endpoint's RSS, the ratios,
# start-up to the first 200 with a 1000-instance key store, and the cost of the audit log.
# Installs wrk and nginx (Debian packages) when missing. Bounded: a few DURATION-long loads.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}

# BIN=path/to/ccs-endpoint measures another build (an earlier commit's, say) in the same way.
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked -q
  BIN=$PWD/target/release/ccs-endpoint
fi
. scripts/bench-lib.sh wrk nginx

wait_log() { for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "timeout waiting for $2 in $1" >&2; cat "$1" >&2; exit 1; }

# PKI and one key from the development default, then 999 more instances (1000 in all).
DEVP=$(port)
"$BIN" serve --dev --dev-dir "$WORK/dev" --dev-listen 127.0.0.1:"$DEVP" --dev-admin-listen 127.0.0.1:0 >"$WORK/dev.log" 2>&1 &
devpid=$!
wait_log "$WORK/dev.log" listening
kill "$devpid"; wait "$devpid" || true
python3 - "$WORK/dev/keys.toml" <<'PY'
import secrets, sys
with open(sys.argv[1], "a") as f:
    for i in range(2, 1001):
        f.write(f'[[key]]\ninstance = "bench{i}"\nkey_id = 1\nsecret = "{secrets.token_hex(32)}"\n')
PY
HEADER=$(cat "$WORK/dev/client.b64")
SVC=$(port); ADM=$(port); NGX=$(port)
bench_config "$SVC" "$ADM"

start_ours() { # $1: RUST_LOG
  : >"$WORK/server.log"
  RUST_LOG=$1 "$BIN" serve --config "$WORK/bench.toml" >"$WORK/server.log" 2>&1 &
  ours=$!; pids+=("$ours")
}

# Start-up to the first 200, 1000-instance key store (process spawn to answer, via Python).
first_200=$(python3 - "$BIN" "$WORK/bench.toml" "$SVC" "$HEADER" "$WORK/dev/ca.crt" <<'PY'
import http.client, ssl, subprocess, sys, time
binary, config, port, header, ca = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
t0 = time.perf_counter()
p = subprocess.Popen([binary, "serve", "--config", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    while True:
        try:
            c = http.client.HTTPSConnection("localhost", int(port), context=ctx, timeout=2)
            c.request("GET", "/kek/ccsdemo/1", headers={"X-DB-Certificate": header})
            if c.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.001)
    print(f"{(time.perf_counter() - t0) * 1000:.1f}")
finally:
    p.terminate(); p.wait()
PY
)

start_ours info
wait_ready
BODY=$(curl -s --cacert "$WORK/dev/ca.crt" -H "X-DB-Certificate: $HEADER" "https://localhost:$SVC/kek/ccsdemo/1")
nginx_anchor "$NGX" "$BODY" 4096 "" "keepalive_requests 1000000;"

load() { # $1 port, $2 extra header or empty -> "rps p99"
  local args=(-t1 -c"$CONNS" -d"$DURATION" --latency -H "X-DB-Certificate: $HEADER")
  [ -n "$2" ] && args+=(-H "$2")
  wrk "${args[@]}" "https://127.0.0.1:$1/kek/ccsdemo/1" >"$WORK/wrk.txt"
  local rps p99 errors
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.txt")
  errors=$(awk '/Non-2xx|Socket errors/' "$WORK/wrk.txt" | tr '\n' ' ')
  echo "$rps $p99 ${errors:-}"
}
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

echo "ccs-endpoint $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, wrk -t1 -c$CONNS -d$DURATION"
read -r our_ka our_ka_p99 our_ka_err < <(load "$SVC" "")
read -r ngx_ka ngx_ka_p99 ngx_ka_err < <(load "$NGX" "")
read -r our_nc our_nc_p99 our_nc_err < <(load "$SVC" "Connection: close")
read -r ngx_nc ngx_nc_p99 ngx_nc_err < <(load "$NGX" "Connection: close")
our_rss=$(rss "$ours")
log_lines=$(wc -l <"$WORK/server.log")
kill "$ours"; wait "$ours" 2>/dev/null || true

start_ours off
wait_ready
read -r quiet_ka quiet_ka_p99 _ < <(load "$SVC" "")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
printf '\n%-34s %12s %10s %12s %10s %7s\n' "load" "ccs rps" "ccs p99" "nginx rps" "nginx p99" "ratio"
printf '%-34s %12s %10s %12s %10s %6sx\n' "keep-alive" "$our_ka" "$our_ka_p99" "$ngx_ka" "$ngx_ka_p99" "$(ratio "$our_ka" "$ngx_ka")"
printf '%-34s %12s %10s %12s %10s %6sx\n' "new connection per request" "$our_nc" "$our_nc_p99" "$ngx_nc" "$ngx_nc_p99" "$(ratio "$our_nc" "$ngx_nc")"
printf '%-34s %12s %10s\n' "keep-alive, audit log off" "$quiet_ka" "$quiet_ka_p99"
echo
echo "ccs-endpoint RSS after the loads: $our_rss MiB ($log_lines log lines written)"
echo "audit log on / off (keep-alive): $(ratio "$our_ka" "$quiet_ka")x"
echo "start-up to first 200, 1000-instance key store: $first_200 ms"
for e in "$our_ka_err" "$ngx_ka_err" "$our_nc_err" "$ngx_nc_err"; do [ -n "$e" ] && echo "wrk: $e"; done
true
