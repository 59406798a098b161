# Sourced by the bench scripts: nginx serving, as the anchor users know, the same JSON body as
# ccs-endpoint over TLS with the same certificate (a static file: no certificate check, no RSA).
#
#   nginx_anchor WORK PORT BODY CONNECTIONS_PER_WORKER "LISTEN FLAGS" "HTTP LINES"
#
# Needs $WORK/dev/server.{crt,key}; starts nginx in the background and appends its pid to pids.
nginx_anchor() {
  local work=$1 port=$2 body=$3 conns=$4 flags=$5 extra=$6
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
