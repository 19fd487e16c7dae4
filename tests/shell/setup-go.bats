#!/usr/bin/env bats
# actions/setup-go against a loopback download mirror holding a tiny fake Go archive.

load lib/common

VERSION=1.99.1

setup() {
  MIRROR=$BATS_TEST_TMPDIR/mirror
  mkdir -p "$MIRROR" "$BATS_TEST_TMPDIR/build/go/bin" "$BATS_TEST_TMPDIR/bin"
  cat >"$BATS_TEST_TMPDIR/build/go/bin/go" <<GO
#!/bin/sh
case "\$*" in
  "env GOVERSION") echo go$VERSION ;;
  "env GOROOT") cd "\$(dirname "\$0")/.." && pwd ;;
  version) echo "go version go$VERSION linux/amd64" ;;
esac
GO
  chmod +x "$BATS_TEST_TMPDIR/build/go/bin/go"
  ARCHIVE=go$VERSION.linux-amd64.tar.gz
  tar -czf "$MIRROR/$ARCHIVE" -C "$BATS_TEST_TMPDIR/build" go
  GOOD_SHA=$(sha256sum "$MIRROR/$ARCHIVE" | cut -d' ' -f1)
  echo "$GOOD_SHA" >"$MIRROR/$ARCHIVE.sha256"
  port=$(start_server mirror static "$MIRROR")
  export INPUT_BASE_URL=http://127.0.0.1:$port
  export INPUT_GO_VERSION=$VERSION
  export INPUT_SHA256=
  export RUNNER_TOOL_CACHE=$BATS_TEST_TMPDIR/tools
  export RUNNER_TEMP=$BATS_TEST_TMPDIR
  export GITHUB_PATH=$BATS_TEST_TMPDIR/github_path
  export GITHUB_OUTPUT=$BATS_TEST_TMPDIR/github_output
  : >"$GITHUB_PATH"
  : >"$GITHUB_OUTPUT"
  # Hide any real Go toolchain.
  export PATH=$BATS_TEST_TMPDIR/bin:/usr/bin:/bin
}

teardown() {
  stop_servers
}

setup_go() {
  run bash "$REPO_ROOT/actions/setup-go/setup-go.sh"
}

@test "downloads, verifies against the published checksum, and adds go to the job's PATH" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake archive is for amd64"
  setup_go
  assert_success
  root=$RUNNER_TOOL_CACHE/go/$VERSION/amd64
  run cat "$GITHUB_PATH"
  assert_output "$root/bin"
  run "$root/bin/go" env GOVERSION
  assert_output "go$VERSION"
  run cat "$GITHUB_OUTPUT"
  assert_output "go-root=$root"
  run server_log mirror
  assert_output "$(printf '%s\n' "GET /$ARCHIVE -" "GET /$ARCHIVE.sha256 -")"
}

@test "a checksum given as input is used instead of the published one" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake archive is for amd64"
  INPUT_SHA256=$GOOD_SHA setup_go
  assert_success
  run server_log mirror
  assert_output "GET /$ARCHIVE -"
}

@test "a wrong checksum installs nothing" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake archive is for amd64"
  INPUT_SHA256=$(printf '0%.0s' {1..64}) setup_go
  assert_failure
  assert_output --partial "checksum mismatch for $ARCHIVE"
  assert_output --partial "nothing installed"
  assert_dir_not_exists "$RUNNER_TOOL_CACHE/go/$VERSION/amd64"
  [ ! -s "$GITHUB_PATH" ]
}

@test "a wrong published checksum installs nothing" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake archive is for amd64"
  printf 'e%.0s' {1..64} >"$MIRROR/$ARCHIVE.sha256"
  setup_go
  assert_failure
  assert_output --partial "checksum mismatch"
  assert_dir_not_exists "$RUNNER_TOOL_CACHE/go/$VERSION/amd64"
  [ ! -s "$GITHUB_PATH" ]
}

@test "skips the download when that version is already on PATH" {
  cat >"$BATS_TEST_TMPDIR/bin/go" <<GO
#!/bin/sh
case "\$*" in
  "env GOVERSION") echo go$VERSION ;;
  "env GOROOT") echo /opt/preinstalled-go ;;
esac
GO
  chmod +x "$BATS_TEST_TMPDIR/bin/go"
  setup_go
  assert_success
  assert_output --partial "go$VERSION already installed"
  run server_log mirror
  assert_output ""
  [ ! -s "$GITHUB_PATH" ]
  run cat "$GITHUB_OUTPUT"
  assert_output "go-root=/opt/preinstalled-go"
}

@test "another version on PATH does not count as installed" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake archive is for amd64"
  printf '#!/bin/sh\necho go1.20.1\n' >"$BATS_TEST_TMPDIR/bin/go"
  chmod +x "$BATS_TEST_TMPDIR/bin/go"
  setup_go
  assert_success
  run cat "$GITHUB_PATH"
  assert_output "$RUNNER_TOOL_CACHE/go/$VERSION/amd64/bin"
}

@test "a version already in the tool cache is reused without downloading" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake archive is for amd64"
  setup_go
  assert_success
  : >"$BATS_TEST_TMPDIR/mirror.port.log"
  setup_go
  assert_success
  run server_log mirror
  assert_output ""
}

@test "a missing archive fails clearly" {
  INPUT_GO_VERSION=1.98.0 setup_go
  assert_failure
  assert_output --partial "could not download $INPUT_BASE_URL/go1.98.0.linux-"
}

@test "a version that is not exact is refused" {
  INPUT_GO_VERSION='1.x; rm -rf /' setup_go
  assert_failure
  assert_output --partial "go-version must be an exact version"
  run server_log mirror
  assert_output ""
}
