#!/usr/bin/env bats
# actions/setup-node against a loopback download mirror holding a tiny fake Node.js release
# (its corepack records how it is called).

load lib/common

VERSION=99.1.0
PNPM=10.12.4

setup() {
  export STUB_LOG_DIR=$BATS_TEST_TMPDIR/log
  MIRROR=$BATS_TEST_TMPDIR/mirror
  NAME=node-v$VERSION-linux-x64
  build=$BATS_TEST_TMPDIR/build/$NAME/bin
  mkdir -p "$MIRROR/v$VERSION" "$build" "$BATS_TEST_TMPDIR/bin" "$STUB_LOG_DIR"
  # shellcheck disable=SC2016 # $1 belongs to the generated script
  printf '#!/bin/sh\n[ "$1" = --version ] && echo v%s\n' "$VERSION" >"$build/node"
  cat >"$build/corepack" <<'EOF2'
#!/bin/sh
echo "corepack $*" >>"$STUB_LOG_DIR/corepack.log"
if [ "$1" = enable ]; then
  printf '#!/bin/sh\necho shim\n' >"$3/pnpm"
  chmod +x "$3/pnpm"
fi
EOF2
  chmod +x "$build/node" "$build/corepack"
  ARCHIVE=$NAME.tar.gz
  tar -czf "$MIRROR/v$VERSION/$ARCHIVE" -C "$BATS_TEST_TMPDIR/build" "$NAME"
  GOOD_SHA=$(sha256sum "$MIRROR/v$VERSION/$ARCHIVE" | cut -d' ' -f1)
  {
    echo "$(printf 'a%.0s' {1..64})  node-v$VERSION-linux-arm64.tar.gz"
    echo "$GOOD_SHA  $ARCHIVE"
  } >"$MIRROR/v$VERSION/SHASUMS256.txt"
  port=$(start_server mirror static "$MIRROR")
  export INPUT_BASE_URL=http://127.0.0.1:$port
  export INPUT_NODE_VERSION=$VERSION
  export INPUT_SHA256=
  export INPUT_PNPM_VERSION=
  export RUNNER_TOOL_CACHE=$BATS_TEST_TMPDIR/tools
  export RUNNER_TEMP=$BATS_TEST_TMPDIR
  export GITHUB_PATH=$BATS_TEST_TMPDIR/github_path
  export GITHUB_ENV=$BATS_TEST_TMPDIR/github_env
  : >"$GITHUB_PATH"
  : >"$GITHUB_ENV"
  # Hide any real Node.js and pnpm.
  export PATH=$BATS_TEST_TMPDIR/bin:/usr/bin:/bin
  ROOT=$RUNNER_TOOL_CACHE/node/$VERSION/x64
}

teardown() {
  stop_servers
}

setup_node() {
  run bash "$REPO_ROOT/actions/setup-node/setup-node.sh"
}

@test "downloads, verifies against SHASUMS256.txt, and adds node to the job's PATH" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake release is for x64"
  setup_node
  assert_success
  run cat "$GITHUB_PATH"
  assert_output "$ROOT/bin"
  run "$ROOT/bin/node" --version
  assert_output "v$VERSION"
  run server_log mirror
  assert_output "$(printf '%s\n' "GET /v$VERSION/$ARCHIVE -" "GET /v$VERSION/SHASUMS256.txt -")"
}

@test "a wrong checksum installs nothing" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake release is for x64"
  INPUT_SHA256=$(printf 'f%.0s' {1..64}) setup_node
  assert_failure
  assert_output --partial "checksum mismatch for $ARCHIVE"
  assert_dir_not_exists "$ROOT"
  [ ! -s "$GITHUB_PATH" ]
}

@test "a release whose SHASUMS256.txt lacks the archive installs nothing" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake release is for x64"
  sed -i "/$ARCHIVE/d" "$MIRROR/v$VERSION/SHASUMS256.txt"
  setup_node
  assert_failure
  assert_output --partial "SHASUMS256.txt lists no sha256 for $ARCHIVE"
  assert_dir_not_exists "$ROOT"
}

@test "a checksum given as input is used instead of SHASUMS256.txt" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake release is for x64"
  INPUT_SHA256=$GOOD_SHA setup_node
  assert_success
  run server_log mirror
  assert_output "GET /v$VERSION/$ARCHIVE -"
}

@test "skips the download when that version is already on PATH" {
  printf '#!/bin/sh\necho v%s\n' "$VERSION" >"$BATS_TEST_TMPDIR/bin/node"
  chmod +x "$BATS_TEST_TMPDIR/bin/node"
  setup_node
  assert_success
  assert_output --partial "node v$VERSION already installed"
  run server_log mirror
  assert_output ""
  [ ! -s "$GITHUB_PATH" ]
}

@test "pnpm is activated through the new node's corepack" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake release is for x64"
  INPUT_PNPM_VERSION=$PNPM setup_node
  assert_success
  run cat "$STUB_LOG_DIR/corepack.log"
  assert_output "$(printf '%s\n' "corepack enable --install-directory $ROOT/bin pnpm" "corepack install -g pnpm@$PNPM")"
  assert_file_executable "$ROOT/bin/pnpm"
  run cat "$GITHUB_ENV"
  assert_output "COREPACK_ENABLE_DOWNLOAD_PROMPT=0"
}

@test "pnpm already at that version is left alone" {
  printf '#!/bin/sh\necho v%s\n' "$VERSION" >"$BATS_TEST_TMPDIR/bin/node"
  printf '#!/bin/sh\necho %s\n' "$PNPM" >"$BATS_TEST_TMPDIR/bin/pnpm"
  chmod +x "$BATS_TEST_TMPDIR/bin/node" "$BATS_TEST_TMPDIR/bin/pnpm"
  INPUT_PNPM_VERSION=$PNPM setup_node
  assert_success
  assert_output --partial "pnpm $PNPM already installed"
  assert_file_not_exists "$STUB_LOG_DIR/corepack.log"
}

@test "a pnpm version pinned with its sha512 is passed to corepack whole" {
  [ "$(uname -m)" = x86_64 ] || skip "the fake release is for x64"
  INPUT_PNPM_VERSION="$PNPM+sha512.5ea8b0de" setup_node
  assert_success
  run tail -n 1 "$STUB_LOG_DIR/corepack.log"
  assert_output "corepack install -g pnpm@$PNPM+sha512.5ea8b0de"
}

@test "bad versions are refused" {
  INPUT_NODE_VERSION=22 setup_node
  assert_failure
  assert_output --partial "node-version must be an exact version"
  INPUT_PNPM_VERSION='latest' setup_node
  assert_failure
  assert_output --partial "pnpm-version must be an exact version"
}
