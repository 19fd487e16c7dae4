#!/usr/bin/env bats
# actions/setup-aws against a loopback download mirror holding a tiny fake AWS CLI installer,
# and its ECR login with stand-ins for aws and docker.

load lib/common

VERSION=2.99.0
REGISTRY=123456789012.dkr.ecr.eu-west-1.amazonaws.com

setup() {
  export STUB_LOG_DIR=$BATS_TEST_TMPDIR/log
  MIRROR=$BATS_TEST_TMPDIR/mirror
  mkdir -p "$MIRROR" "$BATS_TEST_TMPDIR/build/aws" "$BATS_TEST_TMPDIR/bin" "$STUB_LOG_DIR"
  # The fake installer writes an `aws` that reports v2 and hands out a per-region password.
  cat >"$BATS_TEST_TMPDIR/build/aws/install" <<'EOF2'
#!/bin/sh
echo "install $*" >>"$STUB_LOG_DIR/install.log"
while [ $# -gt 0 ]; do
  [ "$1" = --bin-dir ] && bin=$2
  shift
done
mkdir -p "$bin"
cat >"$bin/aws" <<'AWS'
#!/bin/sh
echo "aws $*" >>"$STUB_LOG_DIR/aws.log"
case "$1" in
  --version) echo "aws-cli/2.99.0 Python/3.12 Linux/6 exe/x86_64" ;;
  ecr) echo "ecr-password-for-$4" ;;
esac
AWS
chmod +x "$bin/aws"
EOF2
  chmod +x "$BATS_TEST_TMPDIR/build/aws/install"
  ARCHIVE=awscli-exe-linux-x86_64-$VERSION.zip
  python3 - "$BATS_TEST_TMPDIR/build" "$MIRROR/$ARCHIVE" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[2], "w") as z:
    z.write(os.path.join(sys.argv[1], "aws/install"), "aws/install")
PY
  GOOD_SHA=$(sha256sum "$MIRROR/$ARCHIVE" | cut -d' ' -f1)
  port=$(start_server mirror static "$MIRROR")
  export INPUT_BASE_URL=http://127.0.0.1:$port
  export INPUT_VERSION=$VERSION
  export INPUT_SHA256=$GOOD_SHA
  export INPUT_ECR_REGISTRY=
  export INPUT_REGION=
  export RUNNER_TOOL_CACHE=$BATS_TEST_TMPDIR/tools
  export RUNNER_TEMP=$BATS_TEST_TMPDIR
  export GITHUB_PATH=$BATS_TEST_TMPDIR/github_path
  : >"$GITHUB_PATH"
  # Hide any real aws and docker.
  export PATH=$BATS_TEST_TMPDIR/bin:/usr/bin:/bin
  ROOT=$RUNNER_TOOL_CACHE/aws-cli/$VERSION/x86_64
}

teardown() {
  stop_servers
}

setup_aws() {
  run bash "$REPO_ROOT/actions/setup-aws/setup-aws.sh"
}

stub_docker() {
  cat >"$BATS_TEST_TMPDIR/bin/docker" <<'EOF2'
#!/bin/sh
printf '%s\n' "$@" >"$STUB_LOG_DIR/docker.args"
cat >"$STUB_LOG_DIR/docker.stdin"
EOF2
  chmod +x "$BATS_TEST_TMPDIR/bin/docker"
}

@test "installs the CLI from a verified archive and adds it to the job's PATH" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake installer is for x86_64"
  setup_aws
  assert_success
  run cat "$GITHUB_PATH"
  assert_output "$ROOT/bin"
  run cat "$STUB_LOG_DIR/install.log"
  assert_output "install --install-dir $ROOT/dist --bin-dir $ROOT/bin --update"
  run server_log mirror
  assert_output "GET /$ARCHIVE -"
}

@test "a wrong checksum installs nothing" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake installer is for x86_64"
  INPUT_SHA256=$(printf '1%.0s' {1..64}) setup_aws
  assert_failure
  assert_output --partial "checksum mismatch for $ARCHIVE"
  assert_file_not_exists "$STUB_LOG_DIR/install.log"
  [ ! -s "$GITHUB_PATH" ]
}

@test "a version without a known checksum is refused before downloading" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake installer is for x86_64"
  INPUT_SHA256='' setup_aws
  assert_failure
  assert_output --partial "no pinned sha256 for AWS CLI $VERSION on x86_64: pass the sha256 input"
  run server_log mirror
  assert_output ""
}

@test "an AWS CLI v2 already on PATH is used as is" {
  printf '#!/bin/sh\necho "aws-cli/2.15.0 Python/3.11 Linux/6"\n' >"$BATS_TEST_TMPDIR/bin/aws"
  chmod +x "$BATS_TEST_TMPDIR/bin/aws"
  setup_aws
  assert_success
  assert_output --partial "aws-cli/2.15.0 already installed"
  run server_log mirror
  assert_output ""
  [ ! -s "$GITHUB_PATH" ]
}

@test "an AWS CLI v1 on PATH is replaced by v2" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake installer is for x86_64"
  printf '#!/bin/sh\necho "aws-cli/1.29.0 Python/3.11 Linux/6" >&2\n' >"$BATS_TEST_TMPDIR/bin/aws"
  chmod +x "$BATS_TEST_TMPDIR/bin/aws"
  setup_aws
  assert_success
  run cat "$GITHUB_PATH"
  assert_output "$ROOT/bin"
}

@test "ECR login pipes the password to docker on stdin" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake installer is for x86_64"
  stub_docker
  INPUT_ECR_REGISTRY=$REGISTRY setup_aws
  assert_success
  run cat "$STUB_LOG_DIR/docker.args"
  assert_output "$(printf '%s\n' login --username AWS --password-stdin "$REGISTRY")"
  run cat "$STUB_LOG_DIR/docker.stdin"
  assert_output "ecr-password-for-eu-west-1"
  run grep -F "ecr get-login-password --region eu-west-1" "$STUB_LOG_DIR/aws.log"
  assert_success
}

@test "an explicit region wins over the registry's" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake installer is for x86_64"
  stub_docker
  INPUT_ECR_REGISTRY=$REGISTRY INPUT_REGION=us-east-2 setup_aws
  assert_success
  run cat "$STUB_LOG_DIR/docker.stdin"
  assert_output "ecr-password-for-us-east-2"
}

@test "a registry that is not ECR is refused" {
  stub_docker
  printf '#!/bin/sh\necho "aws-cli/2.15.0"\n' >"$BATS_TEST_TMPDIR/bin/aws"
  chmod +x "$BATS_TEST_TMPDIR/bin/aws"
  INPUT_ECR_REGISTRY='registry.example.com' setup_aws
  assert_failure
  assert_output --partial "ecr-registry must look like 123456789012.dkr.ecr.<region>.amazonaws.com"
  assert_file_not_exists "$STUB_LOG_DIR/docker.args"
}
