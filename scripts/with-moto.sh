#!/usr/bin/env bash
# Runs a command with a moto server on a free loopback port, then stops moto by its PID.
#   scripts/with-moto.sh cargo test -p tinqs-ci --test aws
# Exports AWS_ENDPOINT_URL, static test credentials, AWS_REGION and AWS_EC2_METADATA_DISABLED,
# so the AWS SDK talks only to moto.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
moto="$root/.venv/bin/moto_server"
[ -x "$moto" ] || { echo "with-moto: $moto missing; run scripts/setup.sh (make setup)" >&2; exit 1; }

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
mkdir -p "$root/.tmp"
log="$root/.tmp/moto-$port.log"
MOTO_EC2_LOAD_DEFAULT_AMIS=false "$moto" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
pid=$!
echo "$pid" >"$root/.tmp/moto.pid"
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$root/.tmp/moto.pid"; }
trap stop EXIT

for _ in $(seq 1 100); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$pid" 2>/dev/null || { echo "with-moto: moto exited; see $log" >&2; exit 1; }
  sleep 0.2
done

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export TINQS_TEST_MOTO_URL="$AWS_ENDPOINT_URL"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
"$@"
