# Shared helpers for the bats suites under tests/shell (loaded with `load lib/common`).
# shellcheck shell=bash

REPO_ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
export REPO_ROOT
export BATS_LIB_PATH=${BATS_LIB_PATH:-/usr/lib/bats:/usr/lib}
bats_load_library bats-support
bats_load_library bats-assert
bats_load_library bats-file

# start_server NAME MODE ARGS...: starts tests/shell/lib/serve.py on a free loopback port and
# prints the port. The server is stopped by stop_servers (call it from teardown).
start_server() {
  local name=$1
  shift
  local port_file="$BATS_TEST_TMPDIR/$name.port"
  python3 "$REPO_ROOT/tests/shell/lib/serve.py" "$port_file" "$@" \
    >"$BATS_TEST_TMPDIR/$name.out" 2>&1 3>&- &
  echo "$!" >"$BATS_TEST_TMPDIR/$name.pid"
  local _
  for _ in $(seq 1 100); do
    if [ -s "$port_file" ]; then
      cat "$port_file"
      return 0
    fi
    sleep 0.05
  done
  echo "server $name did not start: $(cat "$BATS_TEST_TMPDIR/$name.out")" >&2
  return 1
}

# The request log of server NAME: one "METHOD PATH AUTH" line per request.
server_log() {
  cat "$BATS_TEST_TMPDIR/$1.port.log" 2>/dev/null || true
}

stop_servers() {
  local pid_file
  for pid_file in "$BATS_TEST_TMPDIR"/*.pid; do
    [ -f "$pid_file" ] || continue
    kill "$(cat "$pid_file")" 2>/dev/null || true
    rm -f "$pid_file"
  done
}

# The tinqs-ci binary (run.sh builds it when missing; TINQS_CI_BIN overrides).
tinqs_ci() {
  "${TINQS_CI_BIN:-$REPO_ROOT/target/debug/tinqs-ci}" "$@"
}

# File mode in octal, e.g. 600.
mode_of() {
  stat -c '%a' "$1"
}
