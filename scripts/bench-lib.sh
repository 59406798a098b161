# Sourced by the bench scripts (from the repository root): the Debian packages they drive,
# a scratch folder cleaned up on exit with every process started into `pids`, free ports, the
# readiness wait, and nginx as the anchor users know.
#
#   . scripts/bench-lib.sh wrk nginx     # the commands needed; missing ones are apt-installed

bench_need=()
for tool in "$@"; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || bench_need+=("$tool")
done
if ((${#bench_need[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${bench_need[@]}"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

WORK=$(mktemp -d)
chmod 755 "$WORK"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits for /readyz on the admin port $ADM; shows the server log ($WORK/server.log) if it never comes.
wait_ready() { for _ in $(seq 200); do curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null && return 0; sleep 0.05; done; echo "ccs-endpoint not ready" >&2; cat "$WORK/server.log" >&2; exit 1; }

# The development PKI and key store of binary $1 in $WORK/dev (`serve --dev` writes them and is
# stopped once it listens); sets HEADER to the database certificate's header value.
dev_pki() {
  local devp; devp=$(port)
  "$1" serve --dev --dev-dir "$WORK/dev" --dev-listen 127.0.0.1:"$devp" --dev-admin-listen 127.0.0.1:0 >"$WORK/dev.log" 2>&1 &
  local devpid=$!
  for _ in $(seq 200); do grep -q listening "$WORK/dev.log" 2>/dev/null && break; sleep 0.05; done
  kill "$devpid"; wait "$devpid" || true
  HEADER=$(cat "$WORK/dev/client.b64")
}

# The benchmarks' configuration, $WORK/bench.toml: the development PKI and key store in
# $WORK/dev, the service on port $1, the admin listener on port $2.
bench_config() {
  cat >"$WORK/bench.toml" <<TOML
[server]
listen = "127.0.0.1:$1"
[tls]
cert = "dev/server.crt"
key = "dev/server.key"
[trust]
roots = ["dev/ca.crt"]
[keys]
file = "dev/keys.toml"
[limits]
max_connections = 4096
[admin]
listen = "127.0.0.1:$2"
TOML
}

# nginx serving the same JSON body as ccs-endpoint over TLS with the same certificate (a static
# file: no certificate check, no RSA):
#
#   nginx_anchor PORT BODY CONNECTIONS_PER_WORKER "LISTEN FLAGS" "HTTP LINES"
#
# Needs $WORK/dev/server.{crt,key}; starts nginx in the background.
nginx_anchor() {
  local work=$WORK port=$1 body=$2 conns=$3 flags=$4 extra=$5
  mkdir -p "$work/www"; printf '%s' "$body" >"$work/www/kek.json"
  cat >"$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
user root;
events { worker_connections $conns; }
http {
  access_log off;
  $extra
  server {
    listen 127.0.0.1:$port ssl $flags;
    ssl_certificate $work/dev/server.crt;
    ssl_certificate_key $work/dev/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $work/www;
    location = /kek/ccsdemo/1 {
      default_type application/json;
      add_header Cache-Control no-store;
      try_files /kek.json =404;
    }
  }
}
NGINX
  "$NGINX" -c "$work/nginx.conf" -g 'daemon off;' &
  pids+=($!)
  sleep 0.5
}
