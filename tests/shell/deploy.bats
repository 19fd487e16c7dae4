#!/usr/bin/env bats
# The CloudFormation template deploy/tinqs-ci.yaml: cfn-lint (pinned in scripts/setup.sh), and a
# deployment into moto's CloudFormation checked by tests/deploy/check_stack.py (the table, index
# and TTL, queue and rules, roles, instance, and `tinqs-ci doctor` on the configuration the
# controller instance writes). What moto cannot check is listed in wiki/Install.md.

load lib/common

TEMPLATE=deploy/tinqs-ci.yaml

@test "cfn-lint passes on the template" {
  run "$REPO_ROOT/.venv/bin/cfn-lint" "$REPO_ROOT/$TEMPLATE"
  assert_success
}

@test "cfn-lint catches a broken template (the lint really runs)" {
  sed -e '/^      KeySchema:$/,+1d' "$REPO_ROOT/$TEMPLATE" >"$BATS_TEST_TMPDIR/broken.yaml"
  run "$REPO_ROOT/.venv/bin/cfn-lint" "$BATS_TEST_TMPDIR/broken.yaml"
  assert_failure
  assert_output --partial "'KeySchema' is a required property"
}

@test "the template deploys into moto and makes what the controller and doctor expect" {
  cd "$REPO_ROOT"
  run scripts/with-moto.sh .venv/bin/python tests/deploy/check_stack.py
  assert_success
  assert_output --partial "check_stack: all checks passed"
  refute_output --partial "FAILED"
}
