#!/usr/bin/env bash
# Runs ShellCheck over every shell script in the repository (tracked or new, not ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.sh' '*.bash' '*.bats' | sort -u)
mapfile -t extra < <(git ls-files --cached --others --exclude-standard | grep -v -E '\.(sh|bash|bats)$' | while read -r f; do
  [ -f "$f" ] && head -n1 "$f" 2>/dev/null | grep -qE '^#!.*(ba)?sh' && echo "$f"; done)
all=("${files[@]}" "${extra[@]}")
sc=()
bats=()
for f in "${all[@]}"; do
  [ -f "$f" ] || continue
  case "$f" in *.bats) bats+=("$f") ;; *) sc+=("$f") ;; esac
done
[ ${#sc[@]} -eq 0 ] || shellcheck -x "${sc[@]}"
[ ${#bats[@]} -eq 0 ] || shellcheck -s bash "${bats[@]}"
echo "shellcheck: ${#sc[@]} scripts and ${#bats[@]} bats files clean"
