#!/usr/bin/env bash
# Builds and pushes every image under images/ as $REGISTRY/<dir>:TAG.
#
#   REGISTRY=123456789012.dkr.ecr.eu-west-1.amazonaws.com/tinqs-ci images/build-all.sh v1.2.0
#   images/build-all.sh --dry-run TAG       prints the docker commands instead of running them
#
# Each directory holding a Dockerfile is one image. The build context is that directory,
# unless the Dockerfile has a line `# build-context: <path>` naming another, relative to the
# repository root (an image built from the sources, such as the controller's, uses `.`).
# Needs Docker and a registry login (for ECR: actions/setup-aws with ecr-registry, or
# `aws ecr get-login-password | docker login`). Not run by the tests, apart from --dry-run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

dry_run=
if [ "${1:-}" = --dry-run ]; then
  dry_run=1
  shift
fi
tag=${1:-}
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || {
  echo "usage: [REGISTRY=…] images/build-all.sh [--dry-run] TAG (a Docker tag, not 'latest')" >&2
  exit 2
}
[ "$tag" != latest ] || {
  echo "images/build-all.sh: refusing the tag 'latest'; images are referred to by exact tags" >&2
  exit 2
}
registry=${REGISTRY:-}
if [ -z "$registry" ]; then
  [ -n "$dry_run" ] || {
    echo "images/build-all.sh: set REGISTRY (e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/tinqs-ci)" >&2
    exit 2
  }
  registry=registry.invalid/tinqs-ci
fi

run() {
  if [ -n "$dry_run" ]; then
    printf '%q ' "$@"
    echo
  else
    "$@"
  fi
}

[ -n "$dry_run" ] || command -v docker >/dev/null || {
  echo "images/build-all.sh: docker is not installed" >&2
  exit 1
}
built=()
for dockerfile in "$root"/images/*/Dockerfile; do
  dir=$(dirname "$dockerfile")
  name=$(basename "$dir")
  context=$dir
  declared=$(sed -n 's/^# build-context: *//p' "$dockerfile" | head -n 1)
  [ -z "$declared" ] || context=$root/$declared
  image=$registry/$name:$tag
  run docker build --pull -f "$dockerfile" -t "$image" "$context"
  run docker push "$image"
  built+=("$image")
done
echo "images/build-all.sh: ${#built[@]} images${dry_run:+ (dry run)}: ${built[*]}"
