#!/usr/bin/env bash
# The checkout action: clone INPUT_REPOSITORY from INPUT_SERVER_URL into INPUT_PATH.
#
# The token is sent as an "Authorization: basic" header given to each git command that talks to
# the server with `git -c http.<server>/.extraHeader=…`, so it reaches only that server (not a
# submodule hosted elsewhere) and is never stored: not in the remote URL, not in .git/config.
# Inputs arrive as environment variables (see action.yml); nothing is interpolated into code.
set -euo pipefail

fail() {
  echo "checkout: $*" >&2
  exit 1
}

server=${INPUT_SERVER_URL:-}
server=${server%/}
repo=${INPUT_REPOSITORY:-}
token=${INPUT_TOKEN:-}
depth=${INPUT_FETCH_DEPTH:-1}
submodules=${INPUT_SUBMODULES:-false}
lfs=${INPUT_LFS:-false}
[[ "$server" =~ ^https?://[^[:space:]]+$ ]] || fail "server-url must be an http(s) URL, got '$server'"
[[ "$repo" =~ ^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$ ]] || fail "repository must be owner/name, got '$repo'"
[ -n "$token" ] || fail "no token: set the token input (the job token is the default)"
[[ "$depth" =~ ^[0-9]+$ ]] || fail "fetch-depth must be a whole number, got '$depth'"
case "$submodules" in false | true | recursive) ;; *) fail "submodules must be false, true or recursive" ;; esac
case "$lfs" in false | true) ;; *) fail "lfs must be true or false" ;; esac
if [ "$lfs" = true ] && ! git lfs version >/dev/null 2>&1; then
  fail "lfs: true needs git-lfs installed"
fi

url="$server/$repo.git"
basic=$(printf 'x-access-token:%s' "$token" | base64 | tr -d '\n')
# The runner masks registered secrets in the job log; register the encoded form as well.
echo "::add-mask::$basic"
git_remote() {
  GIT_TERMINAL_PROMPT=0 git -c "http.$server/.extraHeader=Authorization: basic $basic" \
    -c credential.helper= "$@"
}

case "${INPUT_PATH:-.}" in
  /*) dest=$INPUT_PATH ;;
  *) dest=${GITHUB_WORKSPACE:-$PWD}/${INPUT_PATH:-.} ;;
esac
mkdir -p "$dest"
cd "$dest"
[ -d .git ] || git init -q
git remote remove origin 2>/dev/null || true
git remote add origin "$url"
git config --local gc.auto 0

if [ -n "${INPUT_SPARSE_CHECKOUT:-}" ]; then
  mapfile -t paths < <(printf '%s\n' "$INPUT_SPARSE_CHECKOUT" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d')
  git sparse-checkout set --cone -- "${paths[@]}"
else
  git sparse-checkout disable 2>/dev/null || true
fi

ref=${INPUT_REF:-}
if [ -z "$ref" ] && [ "$repo" = "${JOB_REPOSITORY:-}" ] && [ -n "${JOB_SHA:-}" ]; then
  ref=$JOB_SHA
fi
fetch_args=(fetch --no-tags --no-recurse-submodules --quiet)
[ "$depth" -gt 0 ] && fetch_args+=("--depth=$depth")
branch=
if [ -z "$ref" ]; then
  candidates=(HEAD)
elif [[ "$ref" =~ ^([0-9a-f]{40}|[0-9a-f]{64})$ || "$ref" == refs/* ]]; then
  candidates=("$ref")
else
  candidates=("refs/heads/$ref" "refs/tags/$ref")
fi
fetched=
for candidate in "${candidates[@]}"; do
  if git_remote "${fetch_args[@]}" origin "$candidate"; then
    fetched=$candidate
    break
  fi
done
[ -n "$fetched" ] || fail "could not fetch ${ref:-the default branch} from $url: check that the token can read $repo and that the ref exists"
case "$fetched" in
  refs/heads/*) branch=${fetched#refs/heads/} ;;
esac

if [ -n "$branch" ]; then
  git checkout --quiet --force -B "$branch" FETCH_HEAD
else
  git checkout --quiet --force --detach FETCH_HEAD
fi

if [ "$submodules" != false ]; then
  recursive=()
  [ "$submodules" = recursive ] && recursive=(--recursive)
  sub_depth=()
  [ "$depth" -gt 0 ] && sub_depth=(--depth "$depth")
  git submodule sync --quiet "${recursive[@]}"
  git_remote submodule update --init --force --quiet "${recursive[@]}" "${sub_depth[@]}" ||
    fail "could not fetch the submodules"
fi

if [ "$lfs" = true ]; then
  git_remote lfs pull origin || fail "could not fetch the LFS objects"
fi

commit=$(git rev-parse HEAD)
echo "checkout: $repo at $commit in $dest"
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  echo "commit=$commit" >>"$GITHUB_OUTPUT"
fi
