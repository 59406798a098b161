#!/usr/bin/env bash
# A fleet ([state] backend = "postgres") measured against the file backend in the same run:
#
#   scripts/bench-fleet.sh          # CYCLES=100 ROUNDS=5 DURATION=5s KEYS=10000 by default
#   PARTS="throughput" scripts/bench-fleet.sh    # some of: latency throughput memory
#
# 1. Kill-switch latency (benches/fleet.rs): from starting `keys disable|enable` to every one of
#    three replicas answering the new state, CYCLES times; the same through the signed admin API
#    of one replica (`api disable|enable`, quorum 1 for enable here); the reference is one
#    replica of the file backend, whose `keys disable` edits its key store and which reloads it.
# 2. Poll throughput (wrk, keep-alive, one thread): a fleet replica against a file-backend
#    server, rounds interleaved; the ratio says what following the database costs a poll.
# 3. Memory: the resident set of a fleet replica and of a file-backend server serving KEYS keys.
# A real PostgreSQL (Debian's `postgresql`, started here on a free loopback port in the scratch
# folder, as the postgres user when run as root). Installs wrk and postgresql when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${CYCLES:-100}
ROUNDS=${ROUNDS:-5}
PARTS=${PARTS:-latency throughput memory}
part() { [[ " $PARTS " == *" $1 "* ]]; }
DURATION=${DURATION:-5s}
KEYS=${KEYS:-10000}
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || extra=postgresql
. scripts/bench-lib.sh wrk ${extra:-}
cargo build --release --locked -q
cargo bench --locked --bench fleet --no-run -q
BIN=$PWD/target/release/ccs-endpoint
dev_pki "$BIN"
printf '%s' "$HEADER" >"$WORK/header"

# PostgreSQL in $WORK/pg.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGPORT=$(port)
as_pg=(); [ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
mkdir "$WORK/pg"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$WORK/pg"
"${as_pg[@]}" "$PGBIN/initdb" -A trust -U postgres -E UTF8 --no-locale -D "$WORK/pg/data" >/dev/null
"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
  -o "-p $PGPORT -k $WORK/pg/data -c listen_addresses=127.0.0.1" start >/dev/null
trap '"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m immediate stop >/dev/null 2>&1 || true; cleanup' EXIT
psql() { "$PGBIN/psql" -q -h 127.0.0.1 -p "$PGPORT" -U postgres "$@"; }

# config NAME KEYSTORE DB|file SERVICE_PORT ADMIN_PORT -> $WORK/NAME.toml
config() {
  bench_config "$4" "$5"
  sed "s#^file = .*#file = \"$2\"#" "$WORK/bench.toml" >"$WORK/$1.toml"
  if [ "$3" != file ]; then
    printf 'postgresql://postgres@127.0.0.1:%s/%s\n' "$PGPORT" "$3" >"$WORK/$3-url"
    printf '[state]\nbackend = "postgres"\nurl_file = "%s-url"\nreplica = "%s"\n' "$3" "$1" >>"$WORK/$1.toml"
  fi
}
# start NAME ADMIN_PORT: serve $WORK/NAME.toml until ready; its pid in $last
start() {
  RUST_LOG=warn "$BIN" serve --config "$WORK/$1.toml" >"$WORK/$1.log" 2>&1 &
  last=$!; pids+=("$last")
  for _ in $(seq 400); do curl -sf "http://127.0.0.1:$2/readyz" >/dev/null && return 0; sleep 0.05; done
  echo "$1 not ready" >&2; cat "$WORK/$1.log" >&2; exit 1
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

echo "$(nproc) cores; PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on loopback"

# 1. Kill-switch latency.
psql -c 'CREATE DATABASE fleet'
declare -a addrs=()
for r in r1 r2 r3; do
  s=$(port); a=$(port)
  config "$r" dev/keys.toml fleet "$s" "$a"
  eval "ADM_$r=$a; SVC_$r=$s"
  addrs+=("127.0.0.1:$s")
done
# r1 also serves the signed admin API (enable needs one signer here, to time one request).
API=$(port)
"$BIN" signers add --file "$WORK/signers.toml" --key-id bench --actions status,disable,enable \
  >"$WORK/bench.secret" 2>/dev/null
printf '[api]\nlisten = "127.0.0.1:%s"\nsigners = "signers.toml"\n[api.quorum]\nenable = 1\n' "$API" >>"$WORK/r1.toml"
"$BIN" db migrate --config "$WORK/r1.toml" >/dev/null
"$BIN" db import-states --config "$WORK/r1.toml" --from "$WORK/dev/keys.toml" >/dev/null
for r in r1 r2 r3; do a="ADM_$r"; start "$r" "${!a}"; done
mkdir "$WORK/file"; cp -p "$WORK/dev/keys.toml" "$WORK/file/keys.toml"
FS=$(port); FA=$(port)
config file file/keys.toml file "$FS" "$FA"
start file "$FA"
fleet_addrs=$(IFS=,; echo "${addrs[*]}")
part latency && cargo bench --locked -q --bench fleet -- "$WORK/dev/ca.crt" "$WORK/header" "$BIN" "$CYCLES" \
  "fleet=$WORK/r1.toml=$fleet_addrs" "api=https://localhost:$API,bench,$WORK/bench.secret=$fleet_addrs" \
  "file=$WORK/file.toml=127.0.0.1:$FS"

# 2. Poll throughput: a fleet replica (r1) against the file-backend server.
rps() {
  wrk -t1 -c32 -d"$DURATION" -H "X-DB-Certificate: $HEADER" "https://127.0.0.1:$1/kek/ccsdemo/1" >"$WORK/wrk.txt"
  if grep -qE 'Non-2xx|Socket errors' "$WORK/wrk.txt"; then
    cat "$WORK/wrk.txt" >&2
    curl -s --cacert "$WORK/dev/ca.crt" -H "X-DB-Certificate: $HEADER" "https://localhost:$1/kek/ccsdemo/1" >&2
    tail -n 5 "$WORK"/*.log >&2
    exit 1
  fi
  awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.txt"
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratios=()
for round in $(seq "$ROUNDS"); do
  part throughput || break
  # Which goes first alternates, so that drift within a round favours neither.
  if ((round % 2)); then f=$(rps "$FS"); p=$(rps "$SVC_r1"); else p=$(rps "$SVC_r1"); f=$(rps "$FS"); fi
  r=$(awk -v a="$f" -v b="$p" 'BEGIN {printf "%.3f", b / a}')
  ratios+=("$r")
  printf 'throughput round %d: file %10s rps  fleet %10s rps  fleet/file %s\n' "$round" "$f" "$p" "$r"
done
((${#ratios[@]})) && printf 'throughput median fleet/file: %s\n' "$(printf '%s\n' "${ratios[@]}" | median)"
part memory || exit 0

# 3. Memory with $KEYS keys: one key store, served by a fleet replica and by the file backend.
mkdir "$WORK/big"
python3 - "$WORK/big/keys.toml" "$KEYS" <<'PY'
import os, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f'[[key]]\ninstance = "db{i:05d}"\nkey_id = 1\nsecret = "{os.urandom(32).hex()}"\n')
os.chmod(sys.argv[1], 0o600)
PY
psql -c 'CREATE DATABASE big'
BS=$(port); BA=$(port)
config bigfleet big/keys.toml big "$BS" "$BA"
"$BIN" db migrate --config "$WORK/bigfleet.toml" >/dev/null
"$BIN" db import-states --config "$WORK/bigfleet.toml" --from "$WORK/big/keys.toml" >/dev/null
start bigfleet "$BA"; fleet_pid=$last
for _ in $(seq 400); do
  curl -s "http://127.0.0.1:$BA/metrics" | grep -q "^ccs_keys{state=\"active\"} $KEYS\$" && break; sleep 0.05
done
fleet_rss=$(rss_kib "$fleet_pid")
BS2=$(port); BA2=$(port)
config bigfile big/keys.toml file "$BS2" "$BA2"
start bigfile "$BA2"; file_rss=$(rss_kib "$last")
printf 'memory with %d keys: file %d KiB  fleet %d KiB  fleet/file %.3f\n' "$KEYS" "$file_rss" "$fleet_rss" \
  "$(awk -v a="$file_rss" -v b="$fleet_rss" 'BEGIN {print b / a}')"
