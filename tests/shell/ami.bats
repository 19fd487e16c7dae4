#!/usr/bin/env bats
# The runner AMI build: what can be checked without Packer or AWS.

load lib/common

TEMPLATE=ami/runner.pkr.hcl

# The default of a variable in the Packer template.
pin() {
  sed -n "/^variable \"$1\"/,/^}/s/^ *default *= *\"\(.*\)\"/\1/p" "$REPO_ROOT/$TEMPLATE"
}

# The runner checksums pinned in the template, one "<runner> <sha256>" line each.
runner_pins() {
  sed -n '/^ *runner_sha256_pins = {/,/^ *}/s/^ *"\([^"]*\)" *= *"\([^"]*\)"$/\1 \2/p' "$REPO_ROOT/$TEMPLATE"
}

# provision.sh with every variable set (RUNNER_* from the arguments, NAME=VALUE), run with no
# usable PATH: it must stop at its checks, and if it did not, no command could run.
provision_checks() {
  run env -i PATH=/nonexistent RUNNER_NAME=gitea-runner RUNNER_VERSION=1.0.0 \
    RUNNER_BASE_URL=https://dl.gitea.com GO_VERSION=1 GO_SHA256=x NODE_VERSION=1 NODE_SHA256=x \
    PNPM_VERSION=1 PNPM_SHA512=x AWSCLI_VERSION=1 AWSCLI_SHA256=x "$@" \
    /bin/bash "$REPO_ROOT/ami/provision.sh"
}

@test "make build stops with a clear message when packer is missing" {
  run make -C "$REPO_ROOT/ami" build PACKER=/nonexistent/packer REGION=eu-west-1
  assert_failure
  assert_output --partial "ami: packer not found"
}

@test "make build stops with a clear message when no region is set" {
  run env -u AWS_REGION -u AWS_DEFAULT_REGION make -C "$REPO_ROOT/ami" build PACKER=true
  assert_failure
  assert_output --partial "ami: set REGION"
}

@test "the AMI requires IMDSv2 and is built without a persistent key" {
  run grep -E '^\s*imds_support\s*=\s*"v2.0"' "$REPO_ROOT/$TEMPLATE"
  assert_success
  run grep -E '^\s*http_tokens\s*=\s*"required"' "$REPO_ROOT/$TEMPLATE"
  assert_success
  run grep -E 'ssh_keypair_name|ssh_private_key_file' "$REPO_ROOT/$TEMPLATE"
  assert_failure
}

@test "provisioning removes SSH access" {
  script=$REPO_ROOT/ami/provision.sh
  run grep -F 'allow_public_ssh_keys: false' "$script"
  assert_success
  run grep -F 'systemctl disable ssh.service' "$script"
  assert_success
  run grep -F 'authorized_keys' "$script"
  assert_success
}

@test "every download in provisioning is checked against a pinned sha256" {
  script=$REPO_ROOT/ami/provision.sh
  # curl appears only inside fetch(), which checks the sha256.
  [ "$(grep -c 'curl -' "$script")" = 1 ]
  # shellcheck disable=SC2016 # the literal text $RUNNER_BASE_URL in the script
  [ "$(grep -cE '^fetch "(https://|\$RUNNER_BASE_URL/)' "$script")" = 4 ]
  [ "$(pin runner_base_url)" = https://dl.gitea.com ]
  for name in go node awscli; do
    [[ "$(pin "${name}_sha256")" =~ ^[0-9a-f]{64}$ ]]
  done
  run runner_pins
  assert_output --regexp '^act_runner-0\.2\.13 [0-9a-f]{64}$'
  [[ "$(pin pnpm_sha512)" =~ ^[0-9a-f]{128}$ ]]
}

@test "provisioning refuses to start without its versions and checksums" {
  run env -i PATH=/usr/bin:/bin bash "$REPO_ROOT/ami/provision.sh"
  assert_failure
  assert_output "provision: RUNNER_NAME is not set"
}

@test "the default runner is act_runner 0.2.13, and it is pinned" {
  [ "$(pin runner)" = act_runner-0.2.13 ]
  [ -z "$(pin runner_sha256)" ]
  run runner_pins
  assert_line --regexp "^$(pin runner) [0-9a-f]{64}\$"
}

@test "every pinned runner is one the validation accepts and the boot script can run" {
  while read -r runner sha; do
    [[ "$runner" =~ ^(act_runner-0\.2\.(1[2-9]|[2-9][0-9]+)|gitea-runner-[1-9][0-9]*\.[0-9]+\.[0-9]+)$ ]]
    [[ "$sha" =~ ^[0-9a-f]{64}$ ]]
  done < <(runner_pins)
}

@test "provisioning refuses a runner with no checksum" {
  provision_checks RUNNER_SHA256=
  assert_failure
  assert_output --partial "provision: no sha256 for gitea-runner 1.0.0: it is not pinned in ami/runner.pkr.hcl"
  provision_checks RUNNER_SHA256=abc123
  assert_failure
  assert_output --partial "provision: no sha256 for gitea-runner 1.0.0"
}

@test "provisioning refuses a runner binary it does not know" {
  provision_checks RUNNER_NAME=forgejo-runner RUNNER_SHA256="$(printf 'a%.0s' {1..64})"
  assert_failure
  assert_output "provision: RUNNER_NAME must be act_runner or gitea-runner, not forgejo-runner"
}

@test "make build stops before packer for an unpinned runner with no checksum" {
  run make -C "$REPO_ROOT/ami" build PACKER=/nonexistent/packer REGION=eu-west-1 RUNNER=gitea-runner-1.0.0
  assert_failure
  assert_output --partial "ami: no sha256 pinned for gitea-runner-1.0.0"
  run make -C "$REPO_ROOT/ami" check-runner RUNNER=gitea-runner-1.0.0 RUNNER_SHA256="$(printf 'a%.0s' {1..64})"
  assert_success
  run make -C "$REPO_ROOT/ami" check-runner RUNNER=act_runner-0.2.13
  assert_success
}

@test "the AWS CLI and pnpm pins agree across the AMI, the images and setup-aws" {
  aws_sha=$(pin awscli_sha256)
  aws_version=$(pin awscli_version)
  run grep -F "ARG AWSCLI_SHA256=$aws_sha" "$REPO_ROOT/images/base/Dockerfile"
  assert_success
  run grep -F "PINNED_SHA256_X86_64=$aws_sha" "$REPO_ROOT/actions/setup-aws/setup-aws.sh"
  assert_success
  run grep -F "PINNED_VERSION=$aws_version" "$REPO_ROOT/actions/setup-aws/setup-aws.sh"
  assert_success
  run grep -F "ARG PNPM_SHA512=$(pin pnpm_sha512)" "$REPO_ROOT/images/node/Dockerfile"
  assert_success
}
