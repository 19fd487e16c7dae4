#!/usr/bin/env bash
# The demo: the whole loop, end to end, in a minute or two. It builds tinqs-ci and the
# end-to-end harness, starts moto on a loopback port (scripts/with-moto.sh) and runs
# tinqs-demo: the real controller (`tinqs-ci serve`'s code, with the real EC2, DynamoDB and
# Gitea clients) against moto and the Gitea simulator, while simulated machines boot from the
# user-data the controller gave them. It narrates a scripted story (eleven jobs in two pools,
# a runner that never registers, a machine that dies mid-job, an orphan instance, a Spot
# interruption, a lost webhook, a job taken by a warm runner without a launch, a cache hit on a
# second machine, a Spot interruption warning, someone else's instance), prints the final
# status per pool and a one-line summary, stops everything it started, and exits non-zero if
# the story does not converge. What is real and what is simulated: wiki/Demo.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_EC2_METADATA_DISABLED=true

say() { printf '\n==> %s\n' "$*"; }

say "Building tinqs-ci and tinqs-demo (the first build compiles the AWS SDK: several minutes)"
cargo build -q -p tinqs-ci --bin tinqs-ci -p e2e --bin tinqs-demo

say "Running the story against moto and the Gitea simulator"
scripts/with-moto.sh cargo run -q -p e2e --bin tinqs-demo
