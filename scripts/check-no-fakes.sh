#!/usr/bin/env bash
# Checks that the test doubles stay out of the shipped binaries (`make lint`, no build):
#   1. without dev-dependencies (what `cargo build --release -p tinqs-ci` and `make demo`
#      resolve), no crate switches on the `testing` feature of tinqs-ci or tinqs-model, which
#      gates store::fake, fleet::fake, forge::fake, notices::fake, model::testing and model::fuzz;
#   2. with them (what tests and benchmarks resolve) it is on, so check 1 is not vacuous;
#   3. every binary named as an argument (e.g. target/release/tinqs-ci) has none of the
#      fakes' symbols.
#   scripts/check-no-fakes.sh [BINARY...]
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1

doubles='FakeStore|FakeFleet|FakeForge|FakeQueue|model::testing|model::fuzz'
failed=0

for pkg in tinqs-ci e2e; do
  tree="$(cargo tree -q -p "$pkg" -e normal,build,features --prefix none)"
  if grep -E '^(tinqs-ci|tinqs-model) feature "testing"' <<<"$tree" >/dev/null; then
    echo "check-no-fakes: $pkg's normal dependencies switch on the testing feature:" >&2
    cargo tree -q -p "$pkg" -e normal,build,features -i tinqs-model >&2 || true
    failed=1
  fi
done

tests_tree="$(cargo tree -q -p tinqs-ci -e features --prefix none)"
if ! grep -E '^tinqs-ci feature "testing"' <<<"$tests_tree" >/dev/null; then
  echo "check-no-fakes: tinqs-ci's tests no longer switch on the testing feature" >&2
  failed=1
fi

for bin in "$@"; do
  if nm -C "$bin" | grep -E "$doubles" >/dev/null; then
    echo "check-no-fakes: $bin carries test doubles:" >&2
    nm -C "$bin" | grep -oE "$doubles" | sort | uniq -c >&2
    failed=1
  fi
done

[ "$failed" -eq 0 ] && echo "check-no-fakes: no test double in the shipped build"
exit "$failed"
