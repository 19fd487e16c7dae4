# tinqs-ci: `make demo` runs the main job locally, `make test` runs every test.
# Both install what they need first (scripts/setup.sh).
SHELL := /bin/bash
CARGO ?= cargo
export AWS_EC2_METADATA_DISABLED := true

.PHONY: all setup build test test-rust test-aws test-shell lint fmt clippy shellcheck demo bench bench-webhook audit ami clean

all: build

setup:
	@scripts/setup.sh

build:
	$(CARGO) build --workspace --all-targets

## Every test: Rust unit and integration tests (moto started for the AWS ones), then the
## shell-side suites (boot script sandbox, bats, shellcheck, Dockerfile lint).
test: setup
	scripts/with-moto.sh $(CARGO) test --workspace --all-targets
	@if [ -x tests/shell/run.sh ]; then tests/shell/run.sh; fi

## The moto-backed AWS integration tests alone.
test-aws: setup
	scripts/with-moto.sh $(CARGO) test -p tinqs-ci --test aws

## Shell-side suites alone.
test-shell: setup
	tests/shell/run.sh

lint: fmt clippy shellcheck

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

shellcheck: setup
	@scripts/shellcheck-all.sh

demo: setup
	scripts/demo.sh

## Benchmarks: planning cost (plan <N>: <ms> ms), and the others where they exist.
bench:
	$(CARGO) bench -p tinqs-model --bench plan

## 1,000 signed webhooks at once on 127.0.0.1 (then redelivered, then spooled and replayed):
## time, latency and a check that each job is stored exactly once.
bench-webhook:
	$(CARGO) bench -p tinqs-ci --bench webhook --profile dev

audit:
	@command -v cargo-audit >/dev/null || $(CARGO) install cargo-audit --locked
	$(CARGO) audit --db ../shared/advisory-db --no-fetch --stale

ami:
	$(MAKE) -C ami build

clean:
	$(CARGO) clean
	rm -rf .tmp
