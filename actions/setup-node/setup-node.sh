#!/usr/bin/env bash
# The setup-node action: make Node.js INPUT_NODE_VERSION the `node` on the job's PATH, and
# optionally pnpm INPUT_PNPM_VERSION through corepack.
#
# 1. If `node` on PATH already is that version, nothing is downloaded.
# 2. If the tool cache already holds it (an earlier step of this job), it is reused.
# 3. Otherwise node-v<version>-linux-<arch>.tar.gz is downloaded from INPUT_BASE_URL, checked
#    against INPUT_SHA256 (or the release's SHASUMS256.txt), unpacked into the tool cache and
#    its bin directory appended to $GITHUB_PATH. A checksum mismatch installs nothing.
# pnpm: skipped when `pnpm --version` already matches; otherwise corepack's shims are enabled
# in a directory on PATH and the version is installed as corepack's default.
set -euo pipefail

fail() {
  echo "setup-node: $*" >&2
  exit 1
}

version=${INPUT_NODE_VERSION:-}
version=${version#v}
base=${INPUT_BASE_URL:-https://nodejs.org/dist}
base=${base%/}
expected=${INPUT_SHA256:-}
pnpm_version=${INPUT_PNPM_VERSION:-}
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "node-version must be an exact version like 22.23.1, got '$version'"
[ -z "$expected" ] || [[ "$expected" =~ ^[0-9a-f]{64}$ ]] || fail "sha256 must be 64 hex digits"
[ -z "$pnpm_version" ] || [[ "$pnpm_version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(\+sha(256|512)\.[0-9a-f]+)?$ ]] ||
  fail "pnpm-version must be an exact version like 10.12.4, got '$pnpm_version'"
path_file=${GITHUB_PATH:-}
[ -n "$path_file" ] || fail "GITHUB_PATH is not set: run this inside a job"
case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) fail "unsupported machine $(uname -m)" ;;
esac
cache=${RUNNER_TOOL_CACHE:-$HOME/.cache/tinqs-tools}

if command -v node >/dev/null 2>&1 && [ "$(node --version 2>/dev/null)" = "v$version" ]; then
  echo "setup-node: node v$version already installed at $(command -v node)"
  node_bin=$(dirname "$(command -v node)")
else
  root=$cache/node/$version/$arch
  if [ ! -x "$root/bin/node" ]; then
    archive=node-v$version-linux-$arch.tar.gz
    url=$base/v$version/$archive
    tmp=$(mktemp -d "${RUNNER_TEMP:-/tmp}/setup-node.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    echo "setup-node: downloading $url"
    curl -fsSL --retry 3 -o "$tmp/$archive" "$url" || fail "could not download $url"
    if [ -z "$expected" ]; then
      sums=$(curl -fsSL --retry 3 "$base/v$version/SHASUMS256.txt") || fail "could not download $base/v$version/SHASUMS256.txt"
      expected=$(awk -v f="$archive" '$2 == f { print $1 }' <<<"$sums")
      [[ "$expected" =~ ^[0-9a-f]{64}$ ]] || fail "SHASUMS256.txt lists no sha256 for $archive"
    fi
    actual=$(sha256sum "$tmp/$archive" | cut -d' ' -f1)
    [ "$actual" = "$expected" ] || fail "checksum mismatch for $archive: expected $expected, got $actual; nothing installed"
    mkdir -p "$tmp/unpack"
    tar -xzf "$tmp/$archive" -C "$tmp/unpack" --strip-components=1
    [ -x "$tmp/unpack/bin/node" ] || fail "$archive has no bin/node"
    mkdir -p "$(dirname "$root")"
    rm -rf "$root"
    mv "$tmp/unpack" "$root"
  fi
  node_bin=$root/bin
  echo "$node_bin" >>"$path_file"
  echo "setup-node: node v$version at $root"
fi

if [ -n "$pnpm_version" ]; then
  plain=${pnpm_version%%+*}
  if command -v pnpm >/dev/null 2>&1 && [ "$(pnpm --version 2>/dev/null)" = "$plain" ]; then
    echo "setup-node: pnpm $plain already installed at $(command -v pnpm)"
    exit 0
  fi
  corepack=$node_bin/corepack
  [ -x "$corepack" ] || corepack=$(command -v corepack) || fail "pnpm needs corepack, which this Node.js lacks"
  shims=$node_bin
  if [ ! -w "$shims" ]; then
    shims=$cache/corepack-shims
    mkdir -p "$shims"
    echo "$shims" >>"$path_file"
  fi
  export COREPACK_ENABLE_DOWNLOAD_PROMPT=0
  if [ -n "${GITHUB_ENV:-}" ]; then
    echo "COREPACK_ENABLE_DOWNLOAD_PROMPT=0" >>"$GITHUB_ENV"
  fi
  PATH=$node_bin:$PATH "$corepack" enable --install-directory "$shims" pnpm || fail "corepack enable failed"
  PATH=$node_bin:$PATH "$corepack" install -g "pnpm@$pnpm_version" || fail "corepack could not install pnpm@$pnpm_version"
  echo "setup-node: pnpm $plain activated through corepack"
fi
