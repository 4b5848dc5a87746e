#!/bin/bash
# tests/cluster/run.sh — `make test-cluster`: a real fleet on loopback.
#
# Starts redis-server, three `epsinas serve` replicas configured by
# deploy/epsinas.env (only --listen, --port and --redis-url are overridden),
# and nginx with deploy/nginx.conf rendered by deploy/render.sh, all on
# 127.0.0.1 in a private temp dir; then checks:
#   (a) a score computed on one replica is a cache hit (cached: true, no
#       computation) when asked directly on the other two;
#   (b) SIGKILL of a replica under load through nginx fails no request;
#   (c) stopping Redis under load fails no request, readiness stays 200, and
#       every replica counts epsinas_cache_backend_errors_total > 0;
#   (d) a restarted Redis is used again (a new score lands in it and is a hit
#       on another replica);
#   (e) `epsinas sweep --server` through nginx, with a replica SIGKILLed
#       mid-sweep, writes the same CSV as the local sweep;
#   (f) three shard processes (JOB_COMPLETION_INDEX) merged equal it too.
# plus that deploy/k8s/configmap.yaml, docs/deploy.md's table and
# docker-compose.yml use the same settings and nginx template. Everything it
# starts it stops (trap EXIT); every wait is a bounded poll. Prints "N passed,
# N failed"; exits 1 on failure.
# Env: EPS_BIN (default $BUILD/epsinas, BUILD default build), EPS_CLUSTER_LOAD_S
# (seconds of load per phase, default 4), EPS_CLUSTER_KEEP=1 keeps the temp dir.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${EPS_BIN:-$root/${BUILD:-build}/epsinas}
LOAD_S=${EPS_CLUSTER_LOAD_S:-4}
LOOPS=4
ENV_FILE=$root/deploy/epsinas.env

for tool in redis-server redis-cli nginx curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "cluster: $tool not found (make test-deps installs it)" >&2; echo "0 passed, 1 failed"; exit 1; }
done
[ -x "$BIN" ] || { echo "cluster: $BIN not built (make)" >&2; echo "0 passed, 1 failed"; exit 1; }

tmp=$(mktemp -d /tmp/eps-cluster.XXXXXX)
chmod 755 "$tmp" # nginx workers may run as nobody
pass=0; fail=0
declare -a RPID RPORT  # replicas 1..3
REDIS_PID=""; NGINX_PID=""; LOAD_PIDS=""

now_ms() { date +%s%3N; }

# stop PID: SIGTERM, wait up to 5 s, then SIGKILL (its children too: nginx workers).
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then
    pkill -KILL -P "$pid" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}

cleanup() {
  local p
  for p in $LOAD_PIDS; do kill -TERM "$p" 2>/dev/null; done
  for p in $LOAD_PIDS; do wait "$p" 2>/dev/null; done
  stop_pid "$NGINX_PID"
  for p in "${RPID[@]:-}"; do stop_pid "$p"; done
  stop_pid "$REDIS_PID"
  if [ "$fail" -gt 0 ] || [ "${EPS_CLUSTER_KEEP:-0}" = 1 ]; then
    echo "cluster: logs kept in $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

check() { # check NAME CONDITION-RESULT(0=ok) [detail]
  if [ "$2" -eq 0 ]; then pass=$((pass + 1)); echo "ok - $1${3:+ ($3)}"
  else fail=$((fail + 1)); echo "not ok - $1${3:+ ($3)}"; fi
}

# wait_until TIMEOUT_MS COMMAND...: polls every 50 ms; 0 when it succeeded.
wait_until() {
  local deadline=$(($(now_ms) + $1)); shift
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.05
  done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Below Linux's ephemeral range (32768+), so no outgoing connection takes the
# port between this check and the bind, or while a replica is down.
free_port() {
  local p i
  for i in $(seq 50); do
    p=$((20000 + RANDOM % 12000))
    port_free "$p" && { echo "$p"; return 0; }
  done
  return 1
}

dump_logs() {
  local f
  for f in "$tmp"/*.log "$tmp"/nginx/error.log; do
    [ -f "$f" ] || continue
    echo "---- $f (tail)"; tail -n 15 "$f"
  done
}

die() { echo "cluster: $*" >&2; dump_logs; fail=$((fail + 1)); echo "$pass passed, $fail failed"; exit 1; }

# ------------------------------------------------------------------ processes

REDIS_PORT=$(free_port) || die "no free port"
mkdir -p "$tmp/redis"
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp/redis" \
    --daemonize no --maxmemory 64mb --maxmemory-policy allkeys-lru --logfile "$tmp/redis.log" &
  REDIS_PID=$!
  wait_until 10000 redis_up || die "redis-server did not answer PING on port $REDIS_PORT"
}
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

ready() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/v2/health/ready"; }
# start_replica I PORT: the env file's settings; loopback, port and Redis from flags.
start_replica() {
  local i=$1 port=$2
  (
    set -a
    # shellcheck disable=SC1090
    . "$ENV_FILE"
    set +a
    exec "$BIN" serve --listen 127.0.0.1 --port "$port" --redis-url "redis://127.0.0.1:$REDIS_PORT/0" \
      --replica-tag "r$i" --data-dir "$tmp/data$i"
  ) >"$tmp/r$i.out" 2>>"$tmp/r$i.log" &
  RPID[$i]=$!
  RPORT[$i]=$port
  wait_until 30000 ready "$port" || die "replica $i did not become ready on port $port"
}

start_redis
for i in 1 2 3; do
  p=$(free_port) || die "no free port"
  start_replica "$i" "$p"
done

NGINX_PORT=$(free_port) || die "no free port"
mkdir -p "$tmp/nginx"
"$root/deploy/render.sh" nginx "127.0.0.1:$NGINX_PORT" "127.0.0.1:${RPORT[1]}" "127.0.0.1:${RPORT[2]}" \
  "127.0.0.1:${RPORT[3]}" >"$tmp/nginx/epsinas.conf" || die "render.sh nginx failed"
# Process-level settings only (paths, foreground); all proxying is deploy/nginx.conf.
cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 512; }
http {
    access_log $tmp/nginx/access.log;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    include $tmp/nginx/epsinas.conf;
}
EOF
nginx -t -q -p "$tmp/nginx/" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" >"$tmp/nginx-t.log" 2>&1
rc=$?
check "nginx accepts the rendered deploy/nginx.conf" "$rc" "$(head -c 300 "$tmp/nginx-t.log")"
[ "$rc" -eq 0 ] || die "nginx -t failed"
nginx -p "$tmp/nginx/" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" &
NGINX_PID=$!
wait_until 10000 ready "$NGINX_PORT" || die "nginx did not proxy /v2/health/ready"
LB="http://127.0.0.1:$NGINX_PORT"

# ------------------------------------------------------------------ static checks

"$root/deploy/render.sh" check >"$tmp/render-check.log" 2>&1
check "deploy/k8s/configmap.yaml matches deploy/epsinas.env" $? "$(head -c 300 "$tmp/render-check.log")"
compose=$root/deploy/docker-compose.yml
grep -q 'env_file: \[epsinas.env\]' "$compose" && grep -q '\./nginx.conf:/etc/nginx/templates/default.conf.template' "$compose" &&
  grep -q 'UPSTREAM_SERVERS: "server epsinas1:8080; server epsinas2:8080; server epsinas3:8080;"' "$compose"
check "docker-compose.yml uses epsinas.env and the nginx.conf template" $?
grep -q 'configMapRef: {name: epsinas-env}' "$root/deploy/k8s/epsinas.yaml"
check "the k8s Deployment reads the generated ConfigMap" $?
if [ -f "$root/docs/deploy.md" ]; then
  "$root/deploy/render.sh" check-docs "$BIN" >"$tmp/docs-check.log" 2>&1
  check "docs/deploy.md's settings table matches epsinas.env and serve --help" $? "$(head -c 300 "$tmp/docs-check.log")"
fi

# ------------------------------------------------------------------ requests

OPS=(skip_connect nor_conv_1x1 nor_conv_3x3 avg_pool_3x3)
# arch N (0..4095): distinct NB201 cells without 'none', so distinct N never share a canonical form.
arch() {
  local n=$(($1 % 4096)) o=() k
  for k in 0 1 2 3 4 5; do o[$k]=${OPS[$((n % 4))]}; n=$((n / 4)); done
  echo "|${o[0]}~0|+|${o[1]}~0|${o[2]}~1|+|${o[3]}~0|${o[4]}~1|${o[5]}~2|"
}
body() { printf '{"space":"nb201","arch":"%s","batch_size":64}' "$(arch "$1")"; }
# score URL N OUT: POSTs arch N, body to OUT, prints the HTTP code (000 = no answer).
score() {
  curl -s -o "$3" -w '%{http_code}' --max-time 30 -H 'content-type: application/json' -d "$(body "$2")" "$1/v1/score"
}
metric() { curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
field() { sed -n "s/.*\"$2\":\\([^,}]*\\).*/\\1/p" "$1"; }

# A pool of already-cached architectures (1..8) for the mixed load.
for n in 1 2 3 4 5 6 7 8; do
  c=$(score "$LB" "$n" "$tmp/warm.json")
  [ "$c" = 200 ] || die "warm-up request $n through nginx answered $c: $(head -c 300 "$tmp/warm.json")"
done

# (a) computed once, a hit everywhere.
u1="http://127.0.0.1:${RPORT[1]}"; u2="http://127.0.0.1:${RPORT[2]}"; u3="http://127.0.0.1:${RPORT[3]}"
comp2=$(metric "${RPORT[2]}" epsinas_computations_total); comp3=$(metric "${RPORT[3]}" epsinas_computations_total)
A=570 # the openapi.yaml example cell (convs, a pool, skips)
c1=$(score "$u1" $A "$tmp/a1.json"); c2=$(score "$u2" $A "$tmp/a2.json"); c3=$(score "$u3" $A "$tmp/a3.json")
[ "$c1" = 200 ] && [ "$(field "$tmp/a1.json" cached)" = false ]
check "(a) replica 1 computes a new architecture" $? "HTTP $c1, cached $(field "$tmp/a1.json" cached)"
[ "$c2" = 200 ] && [ "$(field "$tmp/a2.json" cached)" = true ]
check "(a) replica 2 answers it from the shared cache" $? "HTTP $c2, cached $(field "$tmp/a2.json" cached)"
[ "$c3" = 200 ] && [ "$(field "$tmp/a3.json" cached)" = true ]
check "(a) replica 3 answers it from the shared cache" $? "HTTP $c3, cached $(field "$tmp/a3.json" cached)"
e1=$(field "$tmp/a1.json" epsilon)
[ -n "$e1" ] && [ "$e1" = "$(field "$tmp/a2.json" epsilon)" ] && [ "$e1" = "$(field "$tmp/a3.json" epsilon)" ]
check "(a) the three answers carry the same epsilon" $? "$e1"
[ "$(metric "${RPORT[2]}" epsinas_computations_total)" = "$comp2" ] &&
  [ "$(metric "${RPORT[3]}" epsinas_computations_total)" = "$comp3" ]
check "(a) replicas 2 and 3 computed nothing" $?

# load_loop ID BASE OUT: up to 250 requests or LOAD_S seconds through nginx;
# even requests hit the warm pool, odd ones are new architectures BASE+ID*300+i.
load_loop() {
  local id=$1 base=$2 out=$3 i=0 end=$(($(now_ms) + LOAD_S * 1000)) n
  : >"$out"
  while [ "$i" -lt 250 ] && [ "$(now_ms)" -lt "$end" ]; do
    if [ $((i % 2)) -eq 0 ]; then n=$((1 + (id + i) % 8)); else n=$((base + id * 300 + i)); fi
    echo "$(score "$LB" "$n" "$tmp/load$id.json") $n" >>"$out"
    i=$((i + 1))
  done
}
start_load() { # start_load BASE PHASE
  local id
  LOAD_PIDS=""
  for id in $(seq 1 "$LOOPS"); do
    load_loop "$id" "$1" "$tmp/$2-$id.codes" &
    LOAD_PIDS="$LOAD_PIDS $!"
  done
}
lines() { cat "$tmp/$1"-*.codes 2>/dev/null | wc -l; }
enough_load() { [ "$(lines "$1")" -ge "$2" ]; }
finish_load() { # waits (bounded: LOAD_S + 40 s) for the loops to end by themselves
  local deadline=$(($(now_ms) + LOAD_S * 1000 + 40000)) p
  for p in $LOAD_PIDS; do
    while kill -0 "$p" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.05; done
    kill -TERM "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  LOAD_PIDS=""
}
summary() { # prints "TOTAL BAD CODES..." for a phase
  cat "$tmp/$1"-*.codes | awk '{n++; if ($1 != 200) {bad++; c[$1]++}} END {printf "%d %d", n, bad + 0; for (k in c) printf " %s:%d", k, c[k]; print ""}'
}

# (b) a replica dies under load.
refused_before=$(grep -c -E 'connect\(\) failed|prematurely closed|reset by peer' "$tmp/nginx/error.log" 2>/dev/null)
start_load 100 b
wait_until 15000 enough_load b 12 || true
kill -KILL "${RPID[1]}"
wait "${RPID[1]}" 2>/dev/null
killed_at=$(lines b)
finish_load
read -r total bad codes <<<"$(summary b)"
[ "$total" -gt "$killed_at" ] && [ "$killed_at" -ge 4 ]
check "(b) load ran before and after the SIGKILL" $? "$killed_at requests before, $total in all"
[ "$bad" -eq 0 ]
check "(b) SIGKILL of replica 1 under load: zero failed requests" $? "$total requests, $bad failed ${codes:-}"
refused_after=$(grep -c -E 'connect\(\) failed|prematurely closed|reset by peer' "$tmp/nginx/error.log" 2>/dev/null)
[ "${refused_after:-0}" -gt "${refused_before:-0}" ]
check "(b) nginx did meet the dead replica and retried elsewhere" $? "$((refused_after - refused_before)) upstream errors logged"

# the replica comes back on its port and rejoins
start_replica 1 "${RPORT[1]}"
check "(b) replica 1 restarted and ready" 0

# (c) Redis stops under load.
start_load 1400 c
wait_until 15000 enough_load c 12 || true
stop_pid "$REDIS_PID"
REDIS_PID=""
stopped_at=$(lines c)
redis_up
check "(c) Redis is down" $((1 - $?))
for i in 1 2 3; do ready "${RPORT[$i]}"; check "(c) replica $i stays ready without Redis" $?; done
finish_load
read -r total bad codes <<<"$(summary c)"
[ "$total" -gt "$stopped_at" ]
check "(c) load ran before and after Redis stopped" $? "$stopped_at requests before, $total in all"
[ "$bad" -eq 0 ]
check "(c) Redis stopped under load: zero failed requests" $? "$total requests, $bad failed ${codes:-}"
for i in 1 2 3; do
  c=$(score "http://127.0.0.1:${RPORT[$i]}" $((2900 + i)) "$tmp/c$i.json")
  errs=$(metric "${RPORT[$i]}" epsinas_cache_backend_errors_total)
  [ "$c" = 200 ] && [ "${errs:-0}" -gt 0 ]
  check "(c) replica $i scores without Redis and counts backend errors" $? "HTTP $c, errors_total ${errs:-missing}"
done

# (d) Redis restarts (empty: no persistence) and is used again.
start_redis
[ "$(rcli dbsize)" = 0 ]
check "(d) Redis restarted empty" $?
# Each replica finds the restarted Redis once its reconnect backoff (at most
# 2 s) has passed; until then it computes by itself. So: a new architecture
# on replica 2 until one is written, then asked on replica 3, until a hit.
written=""; hit=""
deadline=$(($(now_ms) + 20000))
for k in $(seq 0 300); do
  [ "$(now_ms)" -ge "$deadline" ] && break
  n=$((3000 + k))
  before=$(rcli dbsize)
  c=$(score "$u2" "$n" "$tmp/d.json")
  if [ "$c" = 200 ] && [ "$(rcli dbsize)" -gt "$before" ]; then
    written=$n
    c=$(score "$u3" "$n" "$tmp/d3.json")
    if [ "$c" = 200 ] && [ "$(field "$tmp/d3.json" cached)" = true ]; then hit=$n; break; fi
  fi
  sleep 0.05
done
[ -n "$written" ] && [ "$(rcli --scan --pattern 'epsinas:v1:*' | wc -l)" -ge 1 ]
check "(d) a new score computed on replica 2 is written to the restarted Redis" $? "arch ${written:-none}"
[ -n "$hit" ]
check "(d) replica 3 reads a score replica 2 wrote there" $? "arch ${hit:-none}, $((k + 1)) tries"

# (e) client fan-out: `epsinas sweep --server` through nginx, a replica
# SIGKILLed mid-sweep, the CSV (rows in completion order) equal to the local
# sweep's once sorted: every index exactly once, the same digits.
for n in $(seq 3400 3799); do arch "$n"; done >"$tmp/fan.archs"
"$BIN" sweep --space nb201 --archs "$tmp/fan.archs" --out "$tmp/fan-local.csv" 2>"$tmp/fan-local.log"
check "(e) local sweep of 400 cells" $? "$(tail -c 200 "$tmp/fan-local.log")"
"$BIN" sweep --space nb201 --archs "$tmp/fan.archs" --out "$tmp/fan-remote.csv" --server "$LB" --concurrency 6 \
  2>"$tmp/fan-remote.log" &
FAN_PID=$!
LOAD_PIDS="$FAN_PID"
fan_rows() { [ "$(wc -l <"$tmp/fan-remote.csv" 2>/dev/null || echo 0)" -ge "$1" ]; }
wait_until 30000 fan_rows 60 || true
kill -KILL "${RPID[2]}"
wait "${RPID[2]}" 2>/dev/null
killed_rows=$(wc -l <"$tmp/fan-remote.csv")
finish_load_pid() { local deadline=$(($(now_ms) + 120000)); while kill -0 "$1" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.05; done; wait "$1"; }
finish_load_pid "$FAN_PID"
rc=$?
LOAD_PIDS=""
[ "$rc" -eq 0 ] && [ "$killed_rows" -lt 401 ]
check "(e) sweep --server through nginx finishes after replica 2 is killed mid-sweep" $? \
  "exit $rc, $killed_rows rows before the kill; $(tail -n 2 "$tmp/fan-remote.log" | tr '\n' ' ')"
cmp -s <(sort "$tmp/fan-local.csv") <(sort "$tmp/fan-remote.csv")
check "(e) the fan-out CSV equals the local sweep's (sorted)" $? \
  "$(wc -l <"$tmp/fan-remote.csv") vs $(wc -l <"$tmp/fan-local.csv") lines"
start_replica 2 "${RPORT[2]}"

# (f) sharded sweep as a Kubernetes Indexed Job runs it: 3 processes with
# JOB_COMPLETION_INDEX 0..2, merged, equal to the single sweep of (e).
shard_ok=0
for k in 0 1 2; do
  JOB_COMPLETION_INDEX=$k "$BIN" sweep --space nb201 --archs "$tmp/fan.archs" --shards 3 \
    --out "$tmp/shard-$k.csv" 2>>"$tmp/shards.log" || shard_ok=1
done
"$BIN" merge --out "$tmp/merged.csv" --count 400 "$tmp"/shard-*.csv 2>>"$tmp/shards.log" || shard_ok=1
check "(f) 3 shards (JOB_COMPLETION_INDEX) merge with every index once" "$shard_ok" "$(tail -c 200 "$tmp/shards.log")"
cmp -s <(sort "$tmp/fan-local.csv") <(sort "$tmp/merged.csv")
check "(f) the merged shards equal the single sweep" $?

[ "$fail" -gt 0 ] && dump_logs
# (j) jobs through nginx: POST lands on any replica; every /v1/jobs/{id}...
# request must reach that replica (its tag in the id), or it would 404.
jbody='{"items":['
for k in $(seq 0 39); do
  o0=$((k % 5)); o1=$(((k / 5) % 5)); o2=$(((k / 25) % 5))
  ops="none skip_connect nor_conv_1x1 nor_conv_3x3 avg_pool_3x3"
  a=$(echo $ops | cut -d' ' -f$((o0 + 1))); b=$(echo $ops | cut -d' ' -f$((o1 + 1))); c=$(echo $ops | cut -d' ' -f$((o2 + 1)))
  [ "$k" -gt 0 ] && jbody="$jbody,"
  jbody="$jbody{\"space\":\"nb201\",\"arch\":\"|$a~0|+|$b~0|skip_connect~1|+|$c~0|none~1|skip_connect~2|\"}"
done
jbody="$jbody],\"label\":\"cluster\"}"
jok=1; jids=""
for n in 1 2 3; do # three jobs: round robin spreads them over replicas
  code=$(curl -s -o "$tmp/job$n.json" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    -d "$jbody" "http://127.0.0.1:$NGINX_PORT/v1/jobs")
  id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$tmp/job$n.json")
  [ "$code" = 202 ] && case "$id" in r[123]-*) ;; *) false ;; esac || jok=0
  jids="$jids $id"
done
check "(j) jobs submitted through nginx: 202 with a replica-tagged id" $((1 - jok)) "$jids"
job_done() { curl -fsS --max-time 5 "http://127.0.0.1:$NGINX_PORT/v1/jobs/$1" | grep -q '"status":"succeeded"'; }
jok=1; tags=""
[ -n "${jids// /}" ] || jok=0
for id in $jids; do
  wait_until 60000 job_done "$id" || jok=0
  rows=$(curl -fsS --max-time 10 "http://127.0.0.1:$NGINX_PORT/v1/jobs/$id/results" | tail -n +2 | wc -l)
  [ "$rows" = 40 ] || jok=0
  ev=$(curl -fsS -N --max-time 10 "http://127.0.0.1:$NGINX_PORT/v1/jobs/$id/events")
  case "$ev" in *"event: end"*'"status":"succeeded"'*) ;; *) jok=0 ;; esac
  tags="$tags ${id%%-*}:$rows"
done
check "(j) polled, streamed (SSE) and fetched through nginx: every job 40 rows, status succeeded" $((1 - jok)) "$tags"
distinct=$(for id in $jids; do echo "${id%%-*}"; done | sort -u | wc -l)
[ "$distinct" -ge 2 ]
check "(j) the jobs landed on more than one replica" $? "$distinct replicas"

echo
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
