#!/usr/bin/env bash
# The setup-go action: make Go INPUT_GO_VERSION the `go` on the job's PATH.
#
# 1. If `go` on PATH already is that version, nothing is downloaded.
# 2. If the tool cache already holds it (an earlier step of this job), it is reused.
# 3. Otherwise go<version>.linux-<arch>.tar.gz is downloaded from INPUT_BASE_URL, checked
#    against INPUT_SHA256 (or the published <archive>.sha256), unpacked into the tool cache and
#    its bin directory appended to $GITHUB_PATH. A checksum mismatch installs nothing.
set -euo pipefail

fail() {
  echo "setup-go: $*" >&2
  exit 1
}

version=${INPUT_GO_VERSION:-}
version=${version#go}
base=${INPUT_BASE_URL:-https://dl.google.com/go}
base=${base%/}
expected=${INPUT_SHA256:-}
[[ "$version" =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?((rc|beta)[0-9]+)?$ ]] || fail "go-version must be an exact version like 1.26.4, got '$version'"
[ -z "$expected" ] || [[ "$expected" =~ ^[0-9a-f]{64}$ ]] || fail "sha256 must be 64 hex digits"
path_file=${GITHUB_PATH:-}
[ -n "$path_file" ] || fail "GITHUB_PATH is not set: run this inside a job"
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) fail "unsupported machine $(uname -m)" ;;
esac

output() {
  if [ -n "${GITHUB_OUTPUT:-}" ]; then
    echo "go-root=$1" >>"$GITHUB_OUTPUT"
  fi
}

if command -v go >/dev/null 2>&1 && [ "$(go env GOVERSION 2>/dev/null)" = "go$version" ]; then
  echo "setup-go: go$version already installed at $(command -v go)"
  output "$(go env GOROOT)"
  exit 0
fi

cache=${RUNNER_TOOL_CACHE:-$HOME/.cache/tinqs-tools}
root=$cache/go/$version/$arch
if [ ! -x "$root/bin/go" ]; then
  archive=go$version.linux-$arch.tar.gz
  url=$base/$archive
  tmp=$(mktemp -d "${RUNNER_TEMP:-/tmp}/setup-go.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "setup-go: downloading $url"
  curl -fsSL --retry 3 -o "$tmp/$archive" "$url" || fail "could not download $url"
  if [ -z "$expected" ]; then
    expected=$(curl -fsSL --retry 3 "$url.sha256" | tr -d '[:space:]') || fail "could not download $url.sha256"
    [[ "$expected" =~ ^[0-9a-f]{64}$ ]] || fail "$url.sha256 does not hold a sha256"
  fi
  actual=$(sha256sum "$tmp/$archive" | cut -d' ' -f1)
  [ "$actual" = "$expected" ] || fail "checksum mismatch for $archive: expected $expected, got $actual; nothing installed"
  mkdir -p "$tmp/unpack"
  tar -xzf "$tmp/$archive" -C "$tmp/unpack"
  [ -x "$tmp/unpack/go/bin/go" ] || fail "$archive has no go/bin/go"
  mkdir -p "$(dirname "$root")"
  rm -rf "$root"
  mv "$tmp/unpack/go" "$root"
fi
echo "$root/bin" >>"$path_file"
echo "setup-go: go$version at $root"
output "$root"
