#!/usr/bin/env bats
# The runner images: lint (hadolint + project rules), the project rules on bad Dockerfiles, and
# build-all.sh's plan.

load lib/common

check() {
  printf '%s\n' "$@" >"$BATS_TEST_TMPDIR/Dockerfile"
  run python3 "$REPO_ROOT/images/check-dockerfiles.py" "$BATS_TEST_TMPDIR/Dockerfile"
}

@test "every image Dockerfile passes hadolint and the project rules" {
  run "$REPO_ROOT/images/lint.sh"
  assert_success
  assert_output --partial "dockerfiles: "
}

@test "the six runner images exist" {
  for name in base go node docker deploy godot; do
    assert_file_exists "$REPO_ROOT/images/$name/Dockerfile"
  done
}

@test "a base image with no tag is refused" {
  check "FROM debian"
  assert_failure
  assert_output --partial ":1: image \`debian\` has no tag"
}

@test "a base image on latest is refused" {
  check "FROM registry.example.com:5000/team/app:latest"
  assert_failure
  assert_output --partial "uses the latest tag"
}

@test "a tag without a version number is refused" {
  check "FROM debian:bookworm-slim"
  assert_failure
  assert_output --partial "has a tag with no version number"
}

@test "version tags, digests, scratch and earlier stages are accepted" {
  check "FROM golang:1.26.4-alpine3.23 AS build" \
    "FROM debian@sha256:b1a741487078b369e78119849663d7f1a5341ef2768798f7b7406c4240f86aef" \
    "COPY --from=build /usr/local/go /usr/local/go" \
    "FROM scratch" \
    "COPY --from=0 /x /x"
  assert_success
}

@test "ARG defaults before FROM are resolved, and a variable without one is refused" {
  check "ARG BASE=debian:12.11-slim" "FROM \${BASE}"
  assert_success
  check "ARG BASE=debian" "FROM \$BASE"
  assert_failure
  assert_output --partial "image \`debian\` has no tag"
  check "FROM \${UNSET}:1.2"
  assert_failure
  assert_output --partial "uses a variable with no default"
}

@test "COPY --from an unpinned image is refused" {
  check "FROM debian:12.11-slim" "COPY --from=golang:latest /usr/local/go /usr/local/go"
  assert_failure
  assert_output --partial ":2: COPY --from image \`golang:latest\` uses the latest tag"
}

@test "an unpinned syntax directive is refused" {
  check "# syntax=docker/dockerfile:1" "FROM debian:12.11-slim"
  assert_failure
  assert_output --partial ":1: syntax directive image \`docker/dockerfile:1\` has a tag with no version number"
}

@test "a download without a sha256 check is refused, across continuation lines" {
  check "FROM debian:12.11-slim" \
    "RUN apt-get update \\" \
    "    # fetch the tool" \
    "    && curl -fsSLo /tmp/t.tgz https://example.com/t.tgz \\" \
    "    && tar -xzf /tmp/t.tgz"
  assert_failure
  assert_output --partial ":2: RUN downloads with curl/wget without a sha256sum -c check"
}

@test "a download checked with sha256sum -c is accepted" {
  check "FROM debian:12.11-slim" \
    "RUN wget -qO /tmp/t.tgz https://example.com/t.tgz \\" \
    "    && echo \"0123  /tmp/t.tgz\" | sha256sum -c -"
  assert_success
}

@test "ADD of a URL needs a checksum" {
  check "FROM debian:12.11-slim" "ADD https://example.com/t.tgz /tmp/"
  assert_failure
  assert_output --partial ":2: ADD of a URL without --checksum=sha256:"
  check "FROM debian:12.11-slim" "ADD --checksum=sha256:0123 https://example.com/t.tgz /tmp/"
  assert_success
}

@test "build-all.sh plans one build and push per image with the given tag" {
  run env REGISTRY=123456789012.dkr.ecr.eu-west-1.amazonaws.com/tinqs-ci \
    "$REPO_ROOT/images/build-all.sh" --dry-run v1.0.0
  assert_success
  for name in base go node docker deploy godot; do
    assert_line "docker build --pull -f $REPO_ROOT/images/$name/Dockerfile -t 123456789012.dkr.ecr.eu-west-1.amazonaws.com/tinqs-ci/$name:v1.0.0 $REPO_ROOT/images/$name "
    assert_line "docker push 123456789012.dkr.ecr.eu-west-1.amazonaws.com/tinqs-ci/$name:v1.0.0 "
  done
}

@test "build-all.sh refuses a missing tag, latest, and a real build without REGISTRY" {
  run "$REPO_ROOT/images/build-all.sh"
  assert_failure 2
  run "$REPO_ROOT/images/build-all.sh" latest
  assert_failure 2
  assert_output --partial "refusing the tag 'latest'"
  run env -u REGISTRY "$REPO_ROOT/images/build-all.sh" v1
  assert_failure 2
  assert_output --partial "set REGISTRY"
}
