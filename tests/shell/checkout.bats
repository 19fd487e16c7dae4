#!/usr/bin/env bats
# actions/checkout against a loopback git smart-HTTP server (git http-backend) that answers only
# requests carrying the job token as HTTP Basic auth.

load lib/common

TOKEN=job-token-5f0c2a9e7b

setup() {
  export GIT_CONFIG_NOSYSTEM=1
  export HOME=$BATS_TEST_TMPDIR/home
  mkdir -p "$HOME"
  git config --global user.name test
  git config --global user.email test@example.com
  git config --global init.defaultBranch main
  git config --global protocol.file.allow always
  ROOT=$BATS_TEST_TMPDIR/srv
  make_repos
  port=$(start_server git git "$ROOT" "$TOKEN")
  export INPUT_SERVER_URL=http://127.0.0.1:$port
  export INPUT_REPOSITORY=acme/app
  export INPUT_TOKEN=$TOKEN
  export GITHUB_WORKSPACE=$BATS_TEST_TMPDIR/ws
  export GITHUB_OUTPUT=$BATS_TEST_TMPDIR/output
  mkdir -p "$GITHUB_WORKSPACE"
  : >"$GITHUB_OUTPUT"
  unset INPUT_REF INPUT_PATH INPUT_FETCH_DEPTH INPUT_SPARSE_CHECKOUT INPUT_SUBMODULES INPUT_LFS JOB_SHA JOB_REF JOB_REPOSITORY
}

teardown() {
  stop_servers
}

# acme/lib: one commit. acme/app: five commits on main (src/, docs/, README), a tag v1 on the
# second, a branch `feature`, and acme/lib as a submodule at `vendor/lib` (relative URL).
make_repos() {
  local work=$BATS_TEST_TMPDIR/work
  mkdir -p "$ROOT/acme" "$work"
  git init -q "$work/lib"
  echo lib >"$work/lib/lib.txt"
  git -C "$work/lib" add . && git -C "$work/lib" commit -qm lib
  git clone -q --bare "$work/lib" "$ROOT/acme/lib.git"
  git clone -q --bare "$work/lib" "$work/lib.git"

  git init -q "$work/app"
  cd "$work/app" || return 1
  mkdir src docs
  echo "readme" >README
  echo "main" >src/main.go
  echo "guide" >docs/guide.md
  git add . && git commit -qm one
  for n in 2 3 4; do
    echo "$n" >>src/main.go
    git commit -qam "commit $n"
    [ "$n" = 2 ] && git tag v1
  done
  git checkout -qb feature
  echo feature >feature.txt
  git add . && git commit -qm feature
  git checkout -q main
  git submodule --quiet add ../lib.git vendor/lib
  git commit -qm "add lib"
  git clone -q --bare "$work/app" "$ROOT/acme/app.git"
  APP=$work/app
  cd "$BATS_TEST_TMPDIR" || return 1
}

checkout() {
  run bash "$REPO_ROOT/actions/checkout/checkout.sh"
}

@test "clones the default branch shallowly by default" {
  checkout
  assert_success
  cd "$GITHUB_WORKSPACE"
  [ "$(git rev-parse HEAD)" = "$(git -C "$APP" rev-parse main)" ]
  [ "$(git rev-list --count HEAD)" = 1 ]
  assert_file_exists .git/shallow
  assert_file_exists src/main.go
  run cat "$GITHUB_OUTPUT"
  assert_output "commit=$(git -C "$APP" rev-parse main)"
}

@test "fetch-depth 0 fetches the whole history" {
  INPUT_FETCH_DEPTH=0 checkout
  assert_success
  [ "$(git -C "$GITHUB_WORKSPACE" rev-list --count HEAD)" = 5 ]
  assert_file_not_exists "$GITHUB_WORKSPACE/.git/shallow"
}

@test "a branch ref is checked out as that branch" {
  INPUT_REF=feature checkout
  assert_success
  cd "$GITHUB_WORKSPACE"
  [ "$(git symbolic-ref --short HEAD)" = feature ]
  [ "$(git rev-parse HEAD)" = "$(git -C "$APP" rev-parse feature)" ]
  assert_file_exists feature.txt
}

@test "a tag ref is checked out detached at the tag" {
  INPUT_REF=v1 checkout
  assert_success
  [ "$(git -C "$GITHUB_WORKSPACE" rev-parse HEAD)" = "$(git -C "$APP" rev-parse 'v1^{commit}')" ]
  run git -C "$GITHUB_WORKSPACE" symbolic-ref -q HEAD
  assert_failure
}

@test "without a ref the job's commit is checked out, even an older one" {
  JOB_REPOSITORY=acme/app JOB_SHA=$(git -C "$APP" rev-parse main~2) checkout
  assert_success
  [ "$(git -C "$GITHUB_WORKSPACE" rev-parse HEAD)" = "$(git -C "$APP" rev-parse main~2)" ]
  [ "$(git -C "$GITHUB_WORKSPACE" rev-list --count HEAD)" = 1 ]
}

@test "sparse checkout leaves out the other directories" {
  INPUT_SPARSE_CHECKOUT=$'src\n' checkout
  assert_success
  assert_file_exists "$GITHUB_WORKSPACE/src/main.go"
  assert_file_exists "$GITHUB_WORKSPACE/README"
  assert_file_not_exists "$GITHUB_WORKSPACE/docs/guide.md"
}

@test "checks out into a sub-directory of the workspace" {
  INPUT_PATH=app checkout
  assert_success
  assert_file_exists "$GITHUB_WORKSPACE/app/src/main.go"
}

@test "submodules on the same server are fetched with the same header" {
  INPUT_SUBMODULES=true checkout
  assert_success
  run cat "$GITHUB_WORKSPACE/vendor/lib/lib.txt"
  assert_output lib
}

@test "every request carries the token as a header" {
  checkout
  assert_success
  run server_log git
  refute_output --partial " -"
  assert_output --partial "/acme/app.git/info/refs?service=git-upload-pack auth"
}

@test "the token is left nowhere in the repository" {
  INPUT_SUBMODULES=true checkout
  assert_success
  cd "$GITHUB_WORKSPACE"
  [ "$(git remote get-url origin)" = "$INPUT_SERVER_URL/acme/app.git" ]
  run git config --get-regexp -i 'extraheader'
  assert_failure
  encoded=$(printf 'x-access-token:%s' "$TOKEN" | base64 | tr -d '\n')
  run grep -rlF -e "$TOKEN" -e "$encoded" .git
  assert_failure
}

@test "the encoded header is masked in the job log" {
  checkout
  assert_success
  encoded=$(printf 'x-access-token:%s' "$TOKEN" | base64 | tr -d '\n')
  assert_line "::add-mask::$encoded"
}

@test "a wrong token fails clearly" {
  INPUT_TOKEN=wrong-token checkout
  assert_failure
  assert_output --partial "checkout: could not fetch the default branch from $INPUT_SERVER_URL/acme/app.git: check that the token can read acme/app"
  assert_file_not_exists "$GITHUB_WORKSPACE/src/main.go"
}

@test "a missing ref fails clearly" {
  INPUT_REF=no-such-branch checkout
  assert_failure
  assert_output --partial "could not fetch no-such-branch"
}

@test "bad inputs are refused before any request" {
  INPUT_REPOSITORY='acme/app;rm' checkout
  assert_failure
  assert_output --partial "repository must be owner/name"
  INPUT_FETCH_DEPTH=deep checkout
  assert_failure
  assert_output --partial "fetch-depth must be a whole number"
  INPUT_TOKEN='' checkout
  assert_failure
  assert_output --partial "no token"
  run server_log git
  assert_output ""
}
