#!/usr/bin/env bash
# The setup-aws action: AWS CLI v2 on the job's PATH, and optionally `docker login` to ECR.
#
# When `aws --version` already reports v2, nothing is installed. Otherwise
# awscli-exe-linux-<arch>-<version>.zip is downloaded from INPUT_BASE_URL, checked against
# INPUT_SHA256 (or the checksum pinned below for the default version), installed into the tool
# cache and its bin directory appended to $GITHUB_PATH. A checksum mismatch installs nothing.
# The ECR password goes from `aws ecr get-login-password` to `docker login --password-stdin`
# through a pipe, never through an argument or a file.
set -euo pipefail

# sha256 of awscli-exe-linux-x86_64-2.27.49.zip, as published with the release.
PINNED_VERSION=2.27.49
PINNED_SHA256_X86_64=93842f724f8b76fbee05ac6a403dad603043b04eecfe3526f2035494718eb87b

fail() {
  echo "setup-aws: $*" >&2
  exit 1
}

version=${INPUT_VERSION:-$PINNED_VERSION}
base=${INPUT_BASE_URL:-https://awscli.amazonaws.com}
base=${base%/}
expected=${INPUT_SHA256:-}
registry=${INPUT_ECR_REGISTRY:-}
region=${INPUT_REGION:-}
[[ "$version" =~ ^2\.[0-9]+\.[0-9]+$ ]] || fail "version must be an exact AWS CLI v2 version like $PINNED_VERSION, got '$version'"
[ -z "$expected" ] || [[ "$expected" =~ ^[0-9a-f]{64}$ ]] || fail "sha256 must be 64 hex digits"

if command -v aws >/dev/null 2>&1 && [[ "$(aws --version 2>&1)" == aws-cli/2.* ]]; then
  echo "setup-aws: $(aws --version 2>&1 | cut -d' ' -f1) already installed at $(command -v aws)"
else
  path_file=${GITHUB_PATH:-}
  [ -n "$path_file" ] || fail "GITHUB_PATH is not set: run this inside a job"
  case "$(uname -m)" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) fail "unsupported machine $(uname -m)" ;;
  esac
  if [ -z "$expected" ]; then
    if [ "$version" != "$PINNED_VERSION" ] || [ "$arch" != x86_64 ]; then
      fail "no pinned sha256 for AWS CLI $version on $arch: pass the sha256 input"
    fi
    expected=$PINNED_SHA256_X86_64
  fi
  command -v unzip >/dev/null || fail "installing the AWS CLI needs unzip"
  cache=${RUNNER_TOOL_CACHE:-$HOME/.cache/tinqs-tools}
  root=$cache/aws-cli/$version/$arch
  if [ ! -x "$root/bin/aws" ]; then
    archive=awscli-exe-linux-$arch-$version.zip
    url=$base/$archive
    tmp=$(mktemp -d "${RUNNER_TEMP:-/tmp}/setup-aws.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    echo "setup-aws: downloading $url"
    curl -fsSL --retry 3 -o "$tmp/$archive" "$url" || fail "could not download $url"
    actual=$(sha256sum "$tmp/$archive" | cut -d' ' -f1)
    [ "$actual" = "$expected" ] || fail "checksum mismatch for $archive: expected $expected, got $actual; nothing installed"
    unzip -q "$tmp/$archive" -d "$tmp"
    "$tmp/aws/install" --install-dir "$root/dist" --bin-dir "$root/bin" --update >/dev/null ||
      fail "the AWS CLI installer failed"
  fi
  echo "$root/bin" >>"$path_file"
  export PATH=$root/bin:$PATH
  echo "setup-aws: AWS CLI $version at $root"
fi

if [ -n "$registry" ]; then
  [[ "$registry" =~ ^[0-9]{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$ ]] ||
    fail "ecr-registry must look like 123456789012.dkr.ecr.<region>.amazonaws.com, got '$registry'"
  region=${region:-${BASH_REMATCH[1]}}
  command -v docker >/dev/null || fail "ECR login needs docker"
  aws ecr get-login-password --region "$region" |
    docker login --username AWS --password-stdin "$registry" ||
    fail "ECR login to $registry failed"
  echo "setup-aws: docker logged in to $registry"
fi
