#!/usr/bin/env bash
# Shell-side tests, run by `make test` and `make test-shell`:
#   1. the boot script sandbox (tests/shell/boot.bats, scripts rendered by the tinqs-ci binary),
#   2. ShellCheck over every shell script (scripts/shellcheck-all.sh),
#   3. the Dockerfile lint (images/lint.sh: hadolint and the project rules),
#   4. the other bats suites under tests/shell (actions, images).
# Every part runs even when an earlier one fails; the exit status is non-zero if any failed.
# Installs nothing: scripts/setup.sh provides shellcheck, bats and hadolint. The binary is
# built when missing (TINQS_CI_BIN names another one).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
root=$PWD

failed=()
summaries=()

if [ -z "${TINQS_CI_BIN:-}" ]; then
  export TINQS_CI_BIN=$root/target/debug/tinqs-ci
  if [ ! -x "$TINQS_CI_BIN" ]; then
    echo "== building tinqs-ci"
    cargo build -p tinqs-ci --bin tinqs-ci || failed+=("build tinqs-ci")
  fi
fi

# run_bats FILE: runs one suite with TAP output, echoes it, and records bats' summary line.
run_bats() {
  local file=$1 out status tests failures skipped
  echo "== bats $file"
  out=$(bats --tap "$file" 2>&1)
  status=$?
  printf '%s\n' "$out"
  tests=$(grep -cE '^(not )?ok ' <<<"$out")
  failures=$(grep -cE '^not ok ' <<<"$out")
  skipped=$(grep -cE '^ok .* # skip' <<<"$out")
  local line="$tests tests, $failures failures"
  [ "$skipped" -eq 0 ] || line+=", $skipped skipped"
  summaries+=("$(basename "$file"): $line")
  if [ "$status" -ne 0 ] || [ "$failures" -ne 0 ] || [ "$tests" -eq 0 ]; then
    failed+=("$file")
  fi
}

step() {
  local name=$1
  shift
  echo "== $name"
  "$@" || failed+=("$name")
}

run_bats tests/shell/boot.bats
step shellcheck scripts/shellcheck-all.sh
step "dockerfile lint" images/lint.sh
for suite in tests/shell/*.bats; do
  [ "$suite" = tests/shell/boot.bats ] || run_bats "$suite"
done

echo "== shell tests summary"
printf '%s\n' "${summaries[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "shell tests: all passed"
