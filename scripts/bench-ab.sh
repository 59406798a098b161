#!/usr/bin/env bash
# Compares two builds of ccs-endpoint in one run on this machine: same configuration, same load,
# rounds interleaved (A, B, A, B, ...) so that drift hits both alike. For changes that must not
# cost anything (a refactor): prints each round and the median ratio B / A.
#
#   scripts/bench-ab.sh OLD_BINARY NEW_BINARY     # ROUNDS=5 DURATION=5s CONNS=32 by default
#
# Loads (wrk, one thread, audit log on as in production): keep-alive, and a new TLS connection
# per request (Connection: close, as the SaaS poller does). Installs wrk when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2")
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
. scripts/bench-lib.sh wrk

# The development PKI and key from build A (both builds read the same files).
dev_pki "$A"
SVC=$(port); ADM=$(port)
bench_config "$SVC" "$ADM"

rps() { # $1 binary, $2 extra header or empty -> requests/s
  : >"$WORK/server.log"
  RUST_LOG=info "$1" serve --config "$WORK/bench.toml" >"$WORK/server.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_ready
  local args=(-t1 -c"$CONNS" -d"$DURATION" -H "X-DB-Certificate: $HEADER")
  [ -n "$2" ] && args+=(-H "$2")
  wrk "${args[@]}" "https://127.0.0.1:$SVC/kek/ccsdemo/1" >"$WORK/wrk.txt"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if grep -qE 'Non-2xx|Socket errors' "$WORK/wrk.txt"; then
    echo "wrk reported errors against $1:" >&2; cat "$WORK/wrk.txt" >&2; exit 1
  fi
  awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.txt"
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "A $A"
echo "B $B"
echo "$(nproc) cores, wrk -t1 -c$CONNS -d$DURATION, $ROUNDS rounds"
for load in keep-alive new-connection; do
  header=""; [ "$load" = new-connection ] && header="Connection: close"
  ratios=()
  for round in $(seq "$ROUNDS"); do
    a=$(rps "$A" "$header"); b=$(rps "$B" "$header")
    r=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", b / a}')
    ratios+=("$r")
    printf '%-15s round %d: A %10s rps  B %10s rps  B/A %s\n' "$load" "$round" "$a" "$b" "$r"
  done
  printf '%-15s median B/A: %s\n' "$load" "$(printf '%s\n' "${ratios[@]}" | median)"
done
