#!/usr/bin/env bash
# Lints every Dockerfile under images/: hadolint with images/.hadolint.yaml, then the project
# rules of images/check-dockerfiles.py (pinned base images, sha256-checked downloads).
# HADOLINT overrides the hadolint binary (default .venv/bin/hadolint, from scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
hadolint=${HADOLINT:-.venv/bin/hadolint}
[ -x "$hadolint" ] || command -v "$hadolint" >/dev/null || {
  echo "images/lint.sh: $hadolint missing; run scripts/setup.sh" >&2
  exit 1
}
mapfile -t files < <(find images -type f \( -name Dockerfile -o -name '*.Dockerfile' \) | sort)
[ ${#files[@]} -gt 0 ] || {
  echo "images/lint.sh: no Dockerfiles under images/" >&2
  exit 1
}
status=0
"$hadolint" --no-color --config images/.hadolint.yaml "${files[@]}" || status=1
python3 images/check-dockerfiles.py "${files[@]}" || status=1
if [ "$status" -eq 0 ]; then
  echo "dockerfiles: ${#files[@]} clean (hadolint, pinned bases, checked downloads)"
fi
exit "$status"
