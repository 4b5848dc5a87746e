#!/bin/sh
# image.sh — builds and smoke-tests the container image from the Dockerfile.
#   scripts/image.sh build [TAG]   build with podman (docker when no podman)
#   scripts/image.sh test  [TAG]   run it: uid, health, one score vs the native build
# No container registry is needed: when debian:12-slim cannot be pulled, a
# base with the same Debian release is bootstrapped locally with mmdebstrap
# (from the archive apt already uses) and imported under that name.
# Where `podman run` is refused (crun may not set RLIMIT_NOFILE in a
# sandbox), the test runs the image with `buildah run --isolation chroot`.
set -eu
cmd=${1:-build}
TAG=${2:-localhost/epsinas:ci}
BASE=debian:12-slim
root=$(cd "$(dirname "$0")/.." && pwd)
NATIVE_BIN=${EPS_BIN:-$root/build/epsinas}
ARCH='|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'

say() { echo "image: $*"; }
die() { echo "image: $*" >&2; exit 1; }

need_tools() {
  missing=""
  for p in podman buildah mmdebstrap uidmap; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  say "installing:$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}

ensure_base() {
  if podman image exists "$BASE" || podman image exists "localhost/$BASE"; then return 0; fi
  if timeout 60 podman pull -q "$BASE" >/dev/null 2>&1; then return 0; fi
  say "$BASE cannot be pulled; bootstrapping it with mmdebstrap"
  tmp=$(mktemp -d)
  # minbase = what the slim image holds: apt, dpkg and the essential set.
  mmdebstrap --quiet --variant=minbase bookworm "$tmp/base.tar"
  podman import --change 'CMD ["bash"]' "$tmp/base.tar" "localhost/$BASE" >/dev/null
  rm -rf "$tmp"
}

build() {
  need_tools
  ensure_base
  t0=$(date +%s)
  # --format docker keeps HEALTHCHECK in the image config (OCI has no such field).
  podman build --pull=never --isolation chroot --network host --format docker -t "$TAG" "$root"
  size=$(podman image inspect --format '{{.Size}}' "$TAG")
  say "built $TAG in $(( $(date +%s) - t0 )) s, $(( size / 1048576 )) MiB"
}

score_json() { # prints the epsilon field of a /v1/score answer on stdin
  sed -n 's/.*"epsilon":\([^,]*\),.*/\1/p'
}

# Starts the image's server on $port; sets $runner_pid.
start_container() {
  port=$1
  if timeout 30 podman run --rm --network host "$TAG" --version >/dev/null 2>&1; then
    podman run --rm --network host --name "epsinas-imgtest-$port" -e EPSINAS_PORT="$port" "$TAG" serve \
      >"$log" 2>&1 &
    runner_pid=$!
    stop_container() { podman stop -t 5 "epsinas-imgtest-$port" >/dev/null 2>&1 || true; }
    uid=$(podman run --rm --entrypoint id "$TAG" -u)
  else
    say "podman run refused here; using buildah run --isolation chroot"
    ctr=$(buildah from --pull-never "$TAG")
    uid=$(buildah run --isolation chroot "$ctr" -- id -u)
    buildah run --isolation chroot --network host --env EPSINAS_PORT="$port" "$ctr" -- \
      /usr/local/bin/epsinas serve --port "$port" >"$log" 2>&1 &
    runner_pid=$!
    stop_container() {
      pkill -TERM -f "epsinas serve --port $port" 2>/dev/null || true
      wait "$runner_pid" 2>/dev/null || true
      buildah rm "$ctr" >/dev/null 2>&1 || true
    }
  fi
}

test_image() {
  need_tools
  podman image exists "$TAG" || die "no image $TAG: run 'make image' first"
  [ -x "$NATIVE_BIN" ] || die "no native build at $NATIVE_BIN"
  podman image inspect "$TAG" | grep -q '"Healthcheck"' || die "FAIL: the image config has no HEALTHCHECK"
  say "ok: HEALTHCHECK in the image config"
  port=$(( 20000 + $$ % 20000 ))
  log=$(mktemp)
  start_container "$port"
  trap 'stop_container; rm -f "$log"' EXIT
  [ "$uid" = 10001 ] || die "FAIL: the image runs as uid $uid, not 10001"
  say "ok: runs as uid 10001"
  ready=""
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/health/ready" 2>/dev/null; then ready=1; break; fi
    kill -0 "$runner_pid" 2>/dev/null || { cat "$log"; die "FAIL: the container exited"; }
    sleep 0.2
  done
  [ -n "$ready" ] || { cat "$log"; die "FAIL: /v2/health/ready never answered 200"; }
  say "ok: /v2/health/ready"
  body="{\"space\":\"nb201\",\"arch\":\"$ARCH\"}"
  got=$(curl -fsS -X POST "http://127.0.0.1:$port/v1/score" -H 'Content-Type: application/json' -d "$body" \
        | score_json)
  want=$("$NATIVE_BIN" score --space nb201 --arch "$ARCH" --json | score_json)
  # spec tolerance: |a - b| <= 1e-4 |b| + 1e-5 (the image is a portable build)
  awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b;
        exit !(a != "" && d <= 1e-4 * m + 1e-5) }' \
    || die "FAIL: image epsilon '$got' vs native '$want'"
  say "ok: image epsilon $got = native $want within 1e-4 rel + 1e-5"
  # The dashboard is embedded (built from web/ when the image was built).
  curl -fsS "http://127.0.0.1:$port/" | grep -q '<nav aria-label="Views">' \
    || die "FAIL: / does not serve the dashboard (placeholder page or none)"
  say "ok: / serves the dashboard"
  echo "5 passed, 0 failed"
}

case "$cmd" in
  build) build ;;
  test) test_image ;;
  *) die "usage: image.sh build|test [TAG]" ;;
esac
