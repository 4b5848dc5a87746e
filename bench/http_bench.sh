#!/bin/sh
# HTTP throughput of `epsinas serve` on a cache hit vs nginx serving the
# same JSON as a static file: both on loopback, wrk -c 64 -d 5s with a POST
# Lua script. Prints requests/s of each and the ratio (goal: >= 0.5).
# nginx runs from its own config and prefix in a temp dir, in the
# foreground (daemon off), and is stopped at the end, like the server.
# Usage: bench/http_bench.sh [path/to/epsinas]   (env DURATION=5s CONNS=64)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/epsinas}
duration=${DURATION:-5s}
conns=${CONNS:-64}
for t in wrk nginx curl; do
  command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || { echo "http_bench: $t not installed (scripts/install-deps.sh bench)" >&2; exit 2; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$bin" ] || { echo "http_bench: $bin not found (make)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/epsinas-http-bench.XXXXXX)
chmod 755 "$tmp"   # nginx workers run as an unprivileged user and must read the file
srv_pid=""; ngx_pid=""
cleanup() {
  [ -n "$srv_pid" ] && kill -TERM "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null || true
  [ -n "$ngx_pid" ] && kill -QUIT "$ngx_pid" 2>/dev/null && wait "$ngx_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# epsinas on a free port (it prints "listening on 127.0.0.1:PORT")
"$bin" serve --listen 127.0.0.1 --port 0 --log-level warn >"$tmp/srv.out" 2>"$tmp/srv.err" &
srv_pid=$!
port=""
for _ in $(seq 1 200); do
  port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$tmp/srv.out")
  [ -n "$port" ] && break
  kill -0 "$srv_pid" 2>/dev/null || { cat "$tmp/srv.err" >&2; exit 1; }
  sleep 0.05
done
[ -n "$port" ] || { echo "http_bench: server did not start" >&2; exit 1; }

body='{"space":"nb201","arch":"|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"}'
# warm the cache; the static file is the answer a cache hit returns
curl -sf -X POST -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$port/v1/score" >/dev/null
curl -sf -X POST -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$port/v1/score" >"$tmp/score.json"
grep -q '"cached":true' "$tmp/score.json" || { echo "http_bench: second request was not a cache hit" >&2; exit 1; }

# nginx: same JSON as a static file; POST to a static file is 405 in
# nginx, so error_page maps it back to the file (still a static serve).
ngx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$tmp/nginx/html/v1" "$tmp/nginx/logs"
cp "$tmp/score.json" "$tmp/nginx/html/v1/score"
chmod -R a+rX "$tmp/nginx/html"
cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$ngx_port;
    root $tmp/nginx/html;
    default_type application/json;
    location / { error_page 405 =200 \$uri; }
  }
}
CONF
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' 2>"$tmp/nginx/logs/stderr" &
ngx_pid=$!
for _ in $(seq 1 200); do
  curl -sf -X POST -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$ngx_port/v1/score" >/dev/null 2>&1 && break
  kill -0 "$ngx_pid" 2>/dev/null || { cat "$tmp/nginx/logs/stderr" >&2; exit 1; }
  sleep 0.05
done
curl -sf -X POST -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$ngx_port/v1/score" >"$tmp/ngx.json" ||
  { echo "http_bench: nginx does not serve the file:" >&2; cat "$tmp/nginx/logs/error.log" >&2; exit 1; }
cmp -s "$tmp/score.json" "$tmp/ngx.json" || { echo "http_bench: nginx serves different bytes" >&2; exit 1; }

cat >"$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$body'
LUA

rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$1"; }
wrk -t 2 -c "$conns" -d "$duration" -s "$tmp/post.lua" "http://127.0.0.1:$port/v1/score" >"$tmp/wrk-epsinas.txt"
wrk -t 2 -c "$conns" -d "$duration" -s "$tmp/post.lua" "http://127.0.0.1:$ngx_port/v1/score" >"$tmp/wrk-nginx.txt"
e=$(rps "$tmp/wrk-epsinas.txt"); n=$(rps "$tmp/wrk-nginx.txt")
for f in epsinas nginx; do
  if grep -q "Non-2xx" "$tmp/wrk-$f.txt"; then echo "http_bench: $f answered non-2xx:" >&2; cat "$tmp/wrk-$f.txt" >&2; exit 1; fi
done
printf 'epsinas  %10.0f req/s  (POST /v1/score, cache hit, %s connections, %s)\n' "$e" "$conns" "$duration"
printf 'nginx    %10.0f req/s  (same JSON, static file)\n' "$n"
awk -v e="$e" -v n="$n" 'BEGIN { r = e / n; printf "ratio    %10.2f  (goal >= 0.50: %s)\n", r, (r >= 0.5) ? "met" : "not met" }'
