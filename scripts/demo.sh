#!/usr/bin/env bash
# The demo: builds tinqs-ci, validates the example configuration, and plans one pass over a
# recorded world (examples/world.json) that holds one case of each planner rule, printing the
# plan a person would review.
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_EC2_METADATA_DISABLED=true

say() { printf '\n==> %s\n' "$*"; }

say "Building tinqs-ci"
cargo build -q -p tinqs-ci --bin tinqs-ci
bin=target/debug/tinqs-ci

say "Validating examples/config.yaml (pools go and docker, foreign label host)"
"$bin" config validate examples/config.yaml

say "Planning one pass over examples/world.json"
cat <<'TXT'
The recorded world, at 12:00:
  job 101 (go)      queued, run pending              -> expect a launch
  job 102 (godot)   queued, no pool serves godot      -> expect 'unschedulable', never dropped
  job 103 (go)      instance up 15m, runner never came online -> terminate, retry as attempt 2
  job 104 (docker)  runner idle 38m, its job ran elsewhere    -> terminate and deregister
  job 105 (go)      runner offline since 11:50              -> zombie: terminate and deregister
  job 106 (go)      runner busy with its job                -> left alone
  job 107 (go)      queued in Gitea, its webhook was missed -> backfilled and launched
  job 108 (host)    served by standing runners              -> ignored
  job 109 (go)      Spot instance reclaimed before the job  -> requeued as attempt 2
  i-0999            tagged ours, no run wants it, 1h old    -> orphan, terminated
  i-0abcforeign     no ownership tag                         -> never touched
  runner job-80     registered, no instance                 -> ghost, deregistered
TXT
"$bin" plan --world examples/world.json

actions=$("$bin" plan --world examples/world.json --output json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["actions"]))')
printf '\ndemo: planned %s actions over the recorded world; nothing was launched or terminated (plan only).\n' "$actions"
