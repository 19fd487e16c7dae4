# tinqs-ci: `make demo` runs the main job locally, `make test` runs every test.
# Both install what they need first (scripts/setup.sh).
SHELL := /bin/bash
CARGO ?= cargo
export AWS_EC2_METADATA_DISABLED := true

.PHONY: all setup build test test-rust test-aws test-shell lint fmt clippy shellcheck no-fakes demo bench bench-aws bench-webhook bench-cache sim fuzz audit ami clean

all: build

setup:
	@scripts/setup.sh

build:
	$(CARGO) build --workspace --all-targets

## Every test: Rust unit, property, integration and end-to-end tests (moto started for the
## AWS ones), the benchmarks compiled (not run: `make bench`), then the shell-side suites
## (boot script sandbox, bats, shellcheck, Dockerfile lint).
test: setup
	scripts/with-moto.sh $(CARGO) test --workspace
	$(CARGO) test --workspace --benches --no-run
	tests/shell/run.sh

## The moto-backed AWS integration tests alone.
test-aws: setup
	scripts/with-moto.sh $(CARGO) test -p tinqs-ci --test aws

## Shell-side suites alone.
test-shell: setup
	tests/shell/run.sh

lint: fmt clippy shellcheck no-fakes

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

shellcheck: setup
	@scripts/shellcheck-all.sh

## The test doubles (feature `testing`) stay out of the shipped binaries: checked on the
## resolved features, without a build, and on the release binary's symbols when one has been
## built (wiki/Architecture.md, "Test doubles").
no-fakes:
	@scripts/check-no-fakes.sh $(wildcard target/release/tinqs-ci)

demo: setup
	scripts/demo.sh

## Every performance figure, one line each (`<name>: <value> <unit>`), also written as JSON to
## target/bench.json (wiki/Performance.md says what each measures and its goal): planning
## (`plan <N>`, median of about a second of passes), then the controller's figures over the in-memory ports
## (`webhook ingest`, `webhook to launch`, `pass 10000`) and `rss` in a process of its own.
## The controller is built in the `bench-fast` profile (release, but the AWS SDK crates
## unoptimised): from the dev-seeded target its first build took 9.5 min of CPU (23.5 min on
## the shared 2-core machine), later runs reuse it and take about 2 min (measured: 2 min 2 s).
bench:
	@mkdir -p target
	@rm -f target/bench.json
	@$(CARGO) bench -q -p tinqs-model --bench plan -- --json $(CURDIR)/target/bench.json
	@$(CARGO) bench -q -p tinqs-ci --profile bench-fast --bench figures -- --json $(CURDIR)/target/bench.json
	@$(CARGO) bench -q -p tinqs-ci --profile bench-fast --bench rss -- --json $(CURDIR)/target/bench.json

## Listing and planning over 5,000 instances and 5,000 runs against moto: API calls and time
## per pass (about 20 min, nearly all of it moto). Dev profile: the AWS SDK is already built
## there (its release build takes ~13 min).
bench-aws: setup
	scripts/with-moto.sh $(CARGO) bench -p tinqs-ci --bench aws --profile dev

## 1,000 signed webhooks at once on 127.0.0.1 (then redelivered, then spooled and replayed):
## time, latency and a check that each job is stored exactly once.
## The actions cache on 127.0.0.1 against moto: upload and download throughput of a 1 GiB
## entry and the process's peak memory while moving it (TINQS_CACHE_BENCH_MIB sets the size).
bench-cache: setup
	scripts/with-moto.sh $(CARGO) bench -p tinqs-ci --bench cache --profile dev

bench-webhook:
	$(CARGO) bench -p tinqs-ci --bench webhook --profile dev

## The whole-world benchmark (wiki/Simulation.md): 10,000 jobs under the chaos profile (Spot
## interruptions, boot failures, runners offline or stuck, lost webhooks, Gitea and DynamoDB
## outages, 20 controller kills) through the real planner and executor in virtual time, then
## the same under the baseline policies; fails unless nothing is lost, launched twice, killed
## busy or foreign, and p95 wait is within boot + two resyncs. Writes target/sim.html.
sim:
	@mkdir -p target
	$(CARGO) run -q --release -p tinqs-ci -- sim --config examples/sim.yaml --jobs 10000 \
		--faults chaos --seed 1 --compare --gate --report target/sim.html

## Structured fuzzing of the configuration, workflow and webhook parsers (valid documents
## broken by model/src/fuzz.rs): 100,000 cases per property, with what each case ended in and
## the seed it drew. `make test` runs the same properties with 256 cases. FUZZ_CASES=N changes
## the count; FUZZ_SEED=N replays a run (wiki/Fuzzing.md). The parser properties build with
## the `fuzz` profile (optimised, overflow checks on); the webhook's with the test build.
FUZZ_CASES ?= 100000
FUZZ_SEED ?=
FUZZ_ENV = TINQS_FUZZ_CASES=$(FUZZ_CASES) $(if $(FUZZ_SEED),TINQS_FUZZ_SEED=$(FUZZ_SEED))
fuzz:
	$(FUZZ_ENV) $(CARGO) test -q --profile fuzz -p tinqs-model --test fuzz_inputs -- --nocapture
	$(FUZZ_ENV) $(CARGO) test -q -p tinqs-ci --test webhook_fuzz -- --nocapture

audit:
	@command -v cargo-audit >/dev/null || $(CARGO) install cargo-audit --locked
	$(CARGO) audit --db ../shared/advisory-db --no-fetch --stale

ami:
	$(MAKE) -C ami build

clean:
	$(CARGO) clean
	rm -rf .tmp
