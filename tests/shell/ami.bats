#!/usr/bin/env bats
# The runner AMI build: what can be checked without Packer or AWS.

load lib/common

TEMPLATE=ami/runner.pkr.hcl

# The default of a variable in the Packer template.
pin() {
  sed -n "/^variable \"$1\"/,/^}/s/^ *default *= *\"\(.*\)\"/\1/p" "$REPO_ROOT/$TEMPLATE"
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
  [ "$(grep -c '^fetch "https://' "$script")" = 4 ]
  for name in act_runner go node awscli; do
    [[ "$(pin "${name}_sha256")" =~ ^[0-9a-f]{64}$ ]]
  done
  [[ "$(pin pnpm_sha512)" =~ ^[0-9a-f]{128}$ ]]
}

@test "provisioning refuses to start without its versions and checksums" {
  run env -i PATH=/usr/bin:/bin bash "$REPO_ROOT/ami/provision.sh"
  assert_failure
  assert_output "provision: ACT_RUNNER_VERSION is not set"
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
