#!/usr/bin/env bash
# Provisions the tinqs-ci runner AMI. Packer runs it as root on the build instance (Ubuntu
# 24.04 LTS, x86_64) with the versions and checksums of ami/runner.pkr.hcl in its environment.
#
# Bakes: one runner binary, act_runner or gitea-runner (/usr/local/bin/$RUNNER_NAME), git and
# git-lfs, build-essential, Go (/usr/local/go), Node.js with corepack and pnpm (/usr/local),
# Docker (Ubuntu's docker.io with buildx), AWS CLI v2, and the user `runner` (docker group,
# passwordless sudo) that the runner runs as. Every download outside apt is checked against its
# pinned sha256 before use; a runner with no checksum stops the build. The image ends with no
# SSH: sshd disabled, no host keys, no authorized keys, and cloud-init told not to install any.
set -euo pipefail

for var in RUNNER_NAME RUNNER_VERSION RUNNER_BASE_URL GO_VERSION GO_SHA256 NODE_VERSION \
  NODE_SHA256 PNPM_VERSION PNPM_SHA512 AWSCLI_VERSION AWSCLI_SHA256; do
  [ -n "${!var:-}" ] || {
    echo "provision: $var is not set" >&2
    exit 1
  }
done
case "$RUNNER_NAME" in
  act_runner | gitea-runner) ;;
  *)
    echo "provision: RUNNER_NAME must be act_runner or gitea-runner, not $RUNNER_NAME" >&2
    exit 1
    ;;
esac
# A runner whose checksum is not pinned in runner.pkr.hcl (local.runner_sha256_pins) arrives
# with an empty one unless the operator gave it: no unverified binary goes into the image.
[[ "${RUNNER_SHA256:-}" =~ ^[0-9a-f]{64}$ ]] || {
  echo "provision: no sha256 for $RUNNER_NAME $RUNNER_VERSION: it is not pinned in ami/runner.pkr.hcl" \
    "(runner_sha256_pins); give the one published beside the binary with" \
    "RUNNER_SHA256=<64 hex digits> (make) or -var runner_sha256=… (packer)" >&2
  exit 1
}
[ "$(uname -m)" = x86_64 ] || {
  echo "provision: this script bakes x86_64 images only" >&2
  exit 1
}
export DEBIAN_FRONTEND=noninteractive
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log() { echo "provision: $*"; }

# fetch URL SHA256 FILE: downloads URL to FILE and fails unless its sha256 is SHA256.
fetch() {
  curl -fsSL --retry 3 -o "$3" "$1"
  echo "$2  $3" | sha256sum -c --quiet - || {
    echo "provision: checksum mismatch for $1" >&2
    exit 1
  }
}

log "waiting for the build instance's cloud-init"
cloud-init status --wait >/dev/null || true

log "packages"
apt-get update -q
apt-get upgrade -y -q
apt-get install -y -q --no-install-recommends \
  build-essential ca-certificates curl docker-buildx docker.io git git-lfs jq unzip xz-utils
systemctl enable docker.service containerd.service

log "$RUNNER_NAME $RUNNER_VERSION"
fetch "$RUNNER_BASE_URL/$RUNNER_NAME/$RUNNER_VERSION/$RUNNER_NAME-$RUNNER_VERSION-linux-amd64" \
  "$RUNNER_SHA256" "$work/runner"
rm -f /usr/local/bin/act_runner /usr/local/bin/gitea-runner
install -m 0755 "$work/runner" "/usr/local/bin/$RUNNER_NAME"
"$RUNNER_NAME" --version

log "Go $GO_VERSION"
fetch "https://dl.google.com/go/go$GO_VERSION.linux-amd64.tar.gz" "$GO_SHA256" "$work/go.tar.gz"
rm -rf /usr/local/go
tar -C /usr/local -xzf "$work/go.tar.gz"
ln -sf /usr/local/go/bin/go /usr/local/go/bin/gofmt /usr/local/bin/
go version

log "Node.js $NODE_VERSION"
fetch "https://nodejs.org/dist/v$NODE_VERSION/node-v$NODE_VERSION-linux-x64.tar.xz" "$NODE_SHA256" "$work/node.tar.xz"
tar -C /usr/local -xJf "$work/node.tar.xz" --strip-components=1 --no-same-owner \
  --exclude=CHANGELOG.md --exclude=LICENSE --exclude=README.md
node --version

log "AWS CLI $AWSCLI_VERSION"
fetch "https://awscli.amazonaws.com/awscli-exe-linux-x86_64-$AWSCLI_VERSION.zip" "$AWSCLI_SHA256" "$work/awscli.zip"
unzip -q "$work/awscli.zip" -d "$work"
"$work/aws/install" --update
aws --version

log "user runner"
id runner >/dev/null 2>&1 || useradd --create-home --shell /bin/bash runner
usermod -aG docker runner
echo 'runner ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/90-tinqs-runner
chmod 0440 /etc/sudoers.d/90-tinqs-runner
visudo -cf /etc/sudoers.d/90-tinqs-runner

log "pnpm $PNPM_VERSION through corepack"
corepack enable pnpm
runuser -u runner -- env HOME=/home/runner COREPACK_ENABLE_DOWNLOAD_PROMPT=0 \
  corepack install -g "pnpm@$PNPM_VERSION+sha512.$PNPM_SHA512"
runuser -u runner -- env HOME=/home/runner COREPACK_ENABLE_DOWNLOAD_PROMPT=0 pnpm --version
echo 'COREPACK_ENABLE_DOWNLOAD_PROMPT=0' >>/etc/environment

log "boot latency: no package timers on runner instances"
systemctl disable --now apt-daily.timer apt-daily-upgrade.timer
systemctl mask unattended-upgrades.service

log "no SSH"
cat >/etc/cloud/cloud.cfg.d/99-tinqs-ci.cfg <<'CFG'
# tinqs-ci runner instances accept no SSH: no keys from the launch request, no host keys.
allow_public_ssh_keys: false
ssh_deletekeys: true
ssh_genkeytypes: []
disable_root: true
ssh_pwauth: false
CFG
systemctl disable ssh.service ssh.socket 2>/dev/null || systemctl disable ssh.service
rm -f /etc/ssh/ssh_host_*
rm -rf /root/.ssh /home/runner/.ssh
for home in /home/*; do
  rm -f "$home/.ssh/authorized_keys"
done

log "versions"
cat >/etc/tinqs-ci-runner-release <<REL
runner=$RUNNER_NAME
runner_version=$RUNNER_VERSION
go=$GO_VERSION
node=$NODE_VERSION
pnpm=$PNPM_VERSION
awscli=$AWSCLI_VERSION
REL

log "clean up"
apt-get clean
rm -rf /var/lib/apt/lists/* /tmp/* /var/tmp/*
cloud-init clean --logs
truncate -s 0 /etc/machine-id
log "done"
