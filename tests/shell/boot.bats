#!/usr/bin/env bats
# The runner boot script, rendered by `tinqs-ci render-user-data` and run in a sandbox: a temp
# directory for the runner state, stand-ins for the runner binary (act_runner unless a test
# renames or removes it), poweroff and shutdown first on PATH, the runner search limited to the
# sandbox, and a loopback metadata service.

load lib/common

setup() {
  SANDBOX=$BATS_TEST_TMPDIR
  export STUB_LOG_DIR=$SANDBOX/log
  mkdir -p "$STUB_LOG_DIR" "$SANDBOX/bin"
  cp "$REPO_ROOT"/tests/shell/stubs/boot/* "$SANDBOX/bin/"
  export PATH=$SANDBOX/bin:$PATH
  # Never let the real poweroff or shutdown run.
  [ "$(command -v poweroff)" = "$SANDBOX/bin/poweroff" ]
  [ "$(command -v shutdown)" = "$SANDBOX/bin/shutdown" ]
  imds_port=$(start_server imds imds i-0123456789abcdef0)
  export TINQS_STATE_DIR=$SANDBOX/state
  export TINQS_RUNNER_USER=
  export TINQS_IMDS_URL=http://127.0.0.1:$imds_port
  export TINQS_PER_BOOT_DIR=$SANDBOX/per-boot
  export TINQS_RUNNER_PATH=$SANDBOX/bin
  unset TINQS_RUNNER_BIN
  CONFIG=$REPO_ROOT/examples/config.yaml
}

teardown() {
  stop_servers
}

# render POOL [--self-register] [--config FILE]: writes the script to $SANDBOX/boot.sh.
render() {
  local pool=$1
  shift
  tinqs_ci render-user-data --config "$CONFIG" --pool "$pool" "$@" >"$SANDBOX/boot.sh"
}

boot() {
  run bash "$SANDBOX/boot.sh"
}

events() {
  cat "$STUB_LOG_DIR/events"
}

@test "every example pool renders a script that passes bash -n and shellcheck" {
  for pool in go docker; do
    for mode in "" --self-register; do
      # shellcheck disable=SC2086 # $mode is empty or one flag
      render "$pool" $mode
      run bash -n "$SANDBOX/boot.sh"
      assert_success
      run shellcheck -s bash "$SANDBOX/boot.sh"
      assert_success
      [ "$(wc -c <"$SANDBOX/boot.sh")" -le 16384 ]
    done
  done
}

@test "pre-registered boot writes .runner and config, runs one daemon, then powers off" {
  render go
  boot
  assert_success
  state=$TINQS_STATE_DIR
  [ "$(mode_of "$state")" = 700 ]
  [ "$(mode_of "$state/.runner")" = 600 ]
  [ "$(mode_of "$state/config.yaml")" = 644 ]
  run python3 - "$state/.runner" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["id"] == 1 and isinstance(r["id"], int), r
assert r["uuid"] == "00000000-0000-4000-8000-000000000000", r
assert r["name"] == "tq-demo-op-preview-a1", r
assert r["token"] == "PLACEHOLDER-RUNNER-TOKEN", r
assert r["address"] == "http://127.0.0.1:3000", r
assert r["labels"] == ["go:host", "linux:host"], r
assert r["ephemeral"] is True, r
EOF
  assert_success
  run "$REPO_ROOT/.venv/bin/python" - "$state" <<'EOF'
import sys, yaml
state = sys.argv[1]
c = yaml.safe_load(open(state + "/config.yaml"))
assert c["runner"]["file"] == state + "/.runner", c
assert c["runner"]["labels"] == ["go:host", "linux:host"], c
assert c["runner"]["capacity"] == 1, c
assert c["runner"]["timeout"] == "360m", c
assert c["runner"]["env_file"] == state + "/job.env", c
assert c["runner"]["envs"] == {"TINQS_POOL": "go", "TINQS_RUNNER_NAME": "tq-demo-op-preview-a1"}, c
assert c["host"]["workdir_parent"] == state + "/work", c
assert c["cache"]["enabled"] is False, c
EOF
  assert_success
  assert_dir_exists "$state/work"
  run cat "$state/job.env"
  assert_output "TINQS_INSTANCE_ID=i-0123456789abcdef0"
  run cat "$STUB_LOG_DIR/act_runner.daemon.args"
  assert_output "$(printf '%s\n' daemon --once --config "$state/config.yaml")"
  run cat "$STUB_LOG_DIR/act_runner.daemon.cwd"
  assert_output "$state"
  assert_file_not_exists "$STUB_LOG_DIR/act_runner.register.args"
  run events
  assert_output "$(printf '%s\n' "shutdown -P +360 tinqs-ci: max lifetime reached" \
    "act_runner daemon" "runner file present" "poweroff ")"
}

@test "the daemon's environment holds no token" {
  render go
  boot
  assert_success
  run grep -c PLACEHOLDER "$STUB_LOG_DIR/act_runner.daemon.env"
  assert_output 0
}

@test "the watchdog is scheduled from the pool's max lifetime" {
  render docker
  boot
  assert_success
  run cat "$STUB_LOG_DIR/shutdown.args"
  assert_output "$(printf '%s\n' -P +180 "tinqs-ci: max lifetime reached")"
  run grep -F '"docker:host"' "$TINQS_STATE_DIR/config.yaml"
  assert_success
  run grep -F 'linux:host' "$TINQS_STATE_DIR/config.yaml"
  assert_failure
}

@test "a reboot powers the instance off through a per-boot script" {
  render go
  boot
  assert_success
  script=$TINQS_PER_BOOT_DIR/tinqs-ci-poweroff
  assert_file_executable "$script"
  : >"$STUB_LOG_DIR/events"
  run sh "$script"
  assert_success
  run events
  assert_output "poweroff "
}

@test "a failing runner still powers off, and the script reports its status" {
  render go
  STUB_ACT_RUNNER_EXIT=3 boot
  assert_failure 3
  assert_output --partial "act_runner exited with status 3"
  assert_output --partial "failed with status 3; powering off"
  run events
  assert_line --index 1 "act_runner daemon"
  assert_line --index 3 "poweroff "
}

@test "a failing step before the runner powers off without starting it" {
  render go
  : >"$SANDBOX/not-a-dir"
  TINQS_STATE_DIR=$SANDBOX/not-a-dir/state boot
  assert_failure
  assert_output --partial "powering off"
  assert_file_not_exists "$STUB_LOG_DIR/act_runner.daemon.args"
  run tail -n 1 "$STUB_LOG_DIR/events"
  assert_output "poweroff "
}

@test "a watchdog that cannot be scheduled stops the boot and powers off" {
  render go
  STUB_SHUTDOWN_EXIT=1 boot
  assert_failure
  assert_file_not_exists "$STUB_LOG_DIR/act_runner.daemon.args"
  run events
  assert_output "$(printf '%s\n' "shutdown -P +360 tinqs-ci: max lifetime reached" "poweroff ")"
}

@test "only act_runner installed: it runs the job, and its version is logged" {
  render go
  STUB_RUNNER_VERSION=v0.2.13-stub boot
  assert_success
  assert_output --partial "runner binary $SANDBOX/bin/act_runner: act_runner version v0.2.13-stub"
  assert_output --partial "starting act_runner on instance i-0123456789abcdef0"
  run cat "$STUB_LOG_DIR/act_runner.daemon.args"
  assert_output "$(printf '%s\n' daemon --once --config "$TINQS_STATE_DIR/config.yaml")"
  run events
  assert_output "$(printf '%s\n' "shutdown -P +360 tinqs-ci: max lifetime reached" \
    "act_runner daemon" "runner file present" "poweroff ")"
}

@test "only gitea-runner installed: it runs the job with the same files and arguments" {
  render go
  mv "$SANDBOX/bin/act_runner" "$SANDBOX/bin/gitea-runner"
  STUB_RUNNER_VERSION=v3.3.0-stub boot
  assert_success
  assert_output --partial "runner binary $SANDBOX/bin/gitea-runner: gitea-runner version v3.3.0-stub"
  assert_output --partial "gitea-runner exited with status 0"
  state=$TINQS_STATE_DIR
  [ "$(mode_of "$state/.runner")" = 600 ]
  run cat "$STUB_LOG_DIR/gitea-runner.daemon.args"
  assert_output "$(printf '%s\n' daemon --once --config "$state/config.yaml")"
  run cat "$STUB_LOG_DIR/gitea-runner.daemon.cwd"
  assert_output "$state"
  run grep -c PLACEHOLDER "$STUB_LOG_DIR/gitea-runner.daemon.env"
  assert_output 0
  # The stand-in, like gitea-runner, warns about a config key it does not know: none here.
  [ ! -e "$STUB_LOG_DIR/warnings" ]
  run events
  assert_output "$(printf '%s\n' "shutdown -P +360 tinqs-ci: max lifetime reached" \
    "gitea-runner daemon" "runner file present" "poweroff ")"
}

@test "only gitea-runner installed: self-register mode registers with it, then runs it" {
  render go --self-register
  mv "$SANDBOX/bin/act_runner" "$SANDBOX/bin/gitea-runner"
  boot
  assert_success
  run cat "$STUB_LOG_DIR/gitea-runner.register.args"
  assert_output "$(printf '%s\n' register --no-interactive --ephemeral --config "$TINQS_STATE_DIR/config.yaml" \
    --instance http://127.0.0.1:3000 --token PLACEHOLDER-REGISTRATION-TOKEN \
    --name tq-demo-op-preview-a1 --labels go:host,linux:host)"
  run events
  assert_output "$(printf '%s\n' "shutdown -P +360 tinqs-ci: max lifetime reached" \
    "gitea-runner register" "gitea-runner daemon" "runner file present" "poweroff ")"
}

@test "with both installed, gitea-runner wins, even from a later directory" {
  render go
  mkdir -p "$SANDBOX/opt"
  cp "$SANDBOX/bin/act_runner" "$SANDBOX/opt/gitea-runner"
  TINQS_RUNNER_PATH=$SANDBOX/bin:$SANDBOX/opt boot
  assert_success
  assert_output --partial "runner binary $SANDBOX/opt/gitea-runner: gitea-runner version"
  assert_file_not_exists "$STUB_LOG_DIR/act_runner.daemon.args"
  run events
  assert_line --index 1 "gitea-runner daemon"
}

@test "neither runner installed: a clear error, nothing started, power off" {
  render go
  rm "$SANDBOX/bin/act_runner"
  boot
  assert_failure 1
  assert_output --partial "tinqs-boot: FATAL: no runner binary: neither gitea-runner nor act_runner is installed (searched $SANDBOX/bin); this image cannot run jobs"
  assert_output --partial "failed with status 1; powering off"
  assert_dir_not_exists "$TINQS_STATE_DIR"
  run events
  assert_output "poweroff "
}

@test "a runner file that is not executable does not count as installed" {
  render go
  chmod -x "$SANDBOX/bin/act_runner"
  boot
  assert_failure 1
  assert_output --partial "FATAL: no runner binary"
  run events
  assert_output "poweroff "
}

@test "by default the runner is looked for on PATH" {
  render go
  unset TINQS_RUNNER_PATH
  for name in gitea-runner act_runner; do
    found=$(command -v "$name" || true)
    [ "$found" = "$SANDBOX/bin/$name" ] || [ -z "$found" ] ||
      skip "this host has $found, which the default search would find"
  done
  for dir in /usr/local/bin /usr/bin; do
    [ ! -e "$dir/gitea-runner" ] || skip "this host has $dir/gitea-runner"
  done
  boot
  assert_success
  assert_output --partial "runner binary $SANDBOX/bin/act_runner: act_runner version"
}

@test "a named runner binary that is missing fails clearly and powers off" {
  render go
  TINQS_RUNNER_BIN=$SANDBOX/no-such-runner boot
  assert_failure
  assert_output --partial "runner binary $SANDBOX/no-such-runner not found"
  run events
  assert_output "poweroff "
}

@test "the gitea-runner stand-in warns about a config key it does not know" {
  printf 'runner:\n  file: "x"\n  state_reporting: 1s\n' >"$SANDBOX/bad.yaml"
  cp "$SANDBOX/bin/act_runner" "$SANDBOX/gitea-runner"
  run "$SANDBOX/gitea-runner" daemon --once --config "$SANDBOX/bad.yaml"
  assert_success
  assert_output --partial "unknown config keys: runner.state_reporting"
  run "$SANDBOX/bin/act_runner" daemon --once --config "$SANDBOX/bad.yaml"
  assert_success
}

@test "an unreachable metadata service is not fatal" {
  render go
  stop_servers
  boot
  assert_success
  assert_output --partial "no instance id from the metadata service"
  run cat "$TINQS_STATE_DIR/job.env"
  assert_output "TINQS_INSTANCE_ID=unknown"
  run tail -n 1 "$STUB_LOG_DIR/events"
  assert_output "poweroff "
}

@test "the metadata service is asked with an IMDSv2 session token" {
  render go
  boot
  assert_success
  run server_log imds
  assert_output "$(printf '%s\n' "PUT /latest/api/token -" "GET /latest/meta-data/instance-id -")"
}

@test "self-register mode registers an ephemeral runner, then runs the daemon" {
  render go --self-register
  boot
  assert_success
  state=$TINQS_STATE_DIR
  run cat "$STUB_LOG_DIR/act_runner.register.args"
  assert_output "$(printf '%s\n' register --no-interactive --ephemeral --config "$state/config.yaml" \
    --instance http://127.0.0.1:3000 --token PLACEHOLDER-REGISTRATION-TOKEN \
    --name tq-demo-op-preview-a1 --labels go:host,linux:host)"
  run cat "$STUB_LOG_DIR/act_runner.daemon.args"
  assert_output "$(printf '%s\n' daemon --once --config "$state/config.yaml")"
  run grep -c PLACEHOLDER-REGISTRATION-TOKEN "$STUB_LOG_DIR/act_runner.daemon.env"
  assert_output 0
  run events
  assert_output "$(printf '%s\n' "shutdown -P +360 tinqs-ci: max lifetime reached" \
    "act_runner register" "act_runner daemon" "runner file present" "poweroff ")"
}

@test "a failed registration powers off without starting the daemon" {
  render go --self-register
  cat >"$SANDBOX/bin/act_runner" <<'EOF'
#!/bin/bash
[ "$1" != --version ] || exit 0
echo "act_runner $1" >>"$STUB_LOG_DIR/events"
exit 1
EOF
  boot
  assert_failure
  run events
  assert_output "$(printf '%s\n' "shutdown -P +360 tinqs-ci: max lifetime reached" \
    "act_runner register" "poweroff ")"
}

@test "pre-registered scripts carry no registration token" {
  render go
  run grep -c PLACEHOLDER-REGISTRATION-TOKEN "$SANDBOX/boot.sh"
  assert_output 0
  run grep -c "^TQ_REGISTRATION_TOKEN=''$" "$SANDBOX/boot.sh"
  assert_output 1
}

@test "quotes and command substitutions in the URL and labels stay data" {
  CONFIG=$SANDBOX/config.yaml
  python3 - "$REPO_ROOT/examples/config.yaml" "$CONFIG" <<'EOF'
import sys
text = open(sys.argv[1]).read()
text = text.replace("url: http://127.0.0.1:3000", "url: 'https://git.example.com/x''$(touch${IFS}pwned-url)''\"'")
text = text.replace("extra_labels: [linux]", "extra_labels: ['a''$(touch${IFS}pwned-label)`touch${IFS}pwned-tick`\"b']")
open(sys.argv[2], "w").write(text)
EOF
  render go
  cd "$SANDBOX"
  boot
  assert_success
  assert_file_not_exists "$SANDBOX/pwned-url"
  assert_file_not_exists "$SANDBOX/pwned-label"
  assert_file_not_exists "$SANDBOX/pwned-tick"
  assert_file_not_exists "$TINQS_STATE_DIR/pwned-label"
  run python3 - "$TINQS_STATE_DIR/.runner" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["address"] == "https://git.example.com/x'$(touch${IFS}pwned-url)'\"", r["address"]
assert r["labels"] == ["go:host", "a'$(touch${IFS}pwned-label)`touch${IFS}pwned-tick`\"b:host"], r["labels"]
EOF
  assert_success
  run "$REPO_ROOT/.venv/bin/python" - "$TINQS_STATE_DIR/config.yaml" <<'EOF'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
assert c["runner"]["labels"][1] == "a'$(touch${IFS}pwned-label)`touch${IFS}pwned-tick`\"b:host", c
EOF
  assert_success
}

@test "the unrendered template refuses to run and powers off" {
  run bash "$REPO_ROOT/model/src/userdata/boot.sh.tmpl"
  assert_failure
  assert_output --partial "this is the template, not a rendered boot script"
  run events
  assert_output "poweroff "
}

@test "an unknown pool is refused with the list of pools" {
  run tinqs_ci render-user-data --config "$REPO_ROOT/examples/config.yaml" --pool gpu
  assert_failure
  assert_output --partial "pool \`gpu\` is not in the configuration; configured pools: docker, go"
}
