#!/usr/bin/env python3
"""Project rules for Dockerfiles, on top of hadolint.

    check-dockerfiles.py DOCKERFILE...

1. Every image a Dockerfile builds from is pinned: FROM, COPY --from= naming an image (not an
   earlier stage) and a `# syntax=` directive must give a digest (@sha256:...) or a tag holding a
   dotted version number (debian:12.11-slim, golang:1.26.4-bookworm). No tag, `latest` and
   version-less tags (bookworm-slim) are refused. ARG defaults declared before the first FROM are
   substituted first; a reference that still holds a variable is refused.
2. Every download outside a package manager is checked: a RUN instruction that fetches an
   http(s) URL with curl or wget must verify it with `sha256sum -c` (or `--check`) in the same
   instruction, and ADD of a URL needs --checksum=sha256:....

Prints one line per problem, FILE:LINE: message, and exits 1 when there is any.
"""

import re
import sys

VERSIONED_TAG = re.compile(r"\d+\.\d+")
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def instructions(text):
    """Yields (line number, instruction, arguments) with continuations joined and comments
    inside continuations dropped, as Docker reads them."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start, line = i + 1, lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        parts = []
        while line.endswith("\\"):
            parts.append(line[:-1])
            while i < len(lines) and (not lines[i].strip() or lines[i].strip().startswith("#")):
                i += 1
            line = lines[i].strip() if i < len(lines) else ""
            i += 1
        parts.append(line)
        joined = " ".join(p.strip() for p in parts)
        word, _, rest = joined.partition(" ")
        yield start, word.upper(), rest.strip()


def pin_problem(ref):
    """Why an image reference is not pinned, or None."""
    if ref == "scratch":
        return None
    if "$" in ref:
        return f"image `{ref}` uses a variable with no default before the first FROM"
    if "@sha256:" in ref:
        return None
    name = ref.rsplit("/", 1)[-1]
    if ":" not in name:
        return f"image `{ref}` has no tag: pin a version tag or a digest"
    tag = name.split(":", 1)[1]
    if tag == "latest":
        return f"image `{ref}` uses the latest tag: pin a version tag or a digest"
    if not VERSIONED_TAG.search(tag):
        return f"image `{ref}` has a tag with no version number: pin an exact version tag or a digest"
    return None


def check(path):
    problems = []
    text = open(path, encoding="utf-8").read()
    for n, line in enumerate(text.splitlines(), 1):
        directive = re.match(r"#\s*syntax\s*=\s*(\S+)", line)
        if directive:
            reason = pin_problem(directive.group(1))
            if reason:
                problems.append((n, "syntax directive " + reason))
        elif line.strip() and not line.startswith("#"):
            break
    args, stages, seen_from = {}, set(), False

    def expand(value):
        return VARIABLE.sub(lambda m: args.get(m.group(1) or m.group(2), m.group(0)), value)

    for n, word, rest in instructions(text):
        if word == "ARG" and not seen_from:
            name, eq, default = rest.partition("=")
            if eq:
                args[name.strip()] = default.strip().strip('"')
        elif word == "FROM":
            seen_from = True
            tokens = [t for t in rest.split() if not t.startswith("--")]
            if not tokens:
                problems.append((n, "FROM names no image"))
                continue
            ref = expand(tokens[0])
            if ref.lower() not in stages:
                reason = pin_problem(ref)
                if reason:
                    problems.append((n, reason))
            if len(tokens) >= 3 and tokens[1].lower() == "as":
                stages.add(tokens[2].lower())
        elif word == "COPY":
            for token in rest.split():
                if token.startswith("--from="):
                    source = expand(token[len("--from="):])
                    if source.lower() not in stages and not source.isdigit():
                        reason = pin_problem(source)
                        if reason:
                            problems.append((n, "COPY --from " + reason))
        elif word == "RUN":
            if re.search(r"\b(curl|wget)\b", rest) and re.search(r"https?://", rest):
                if not re.search(r"\bsha256sum\s+(-c|--check)\b", rest):
                    problems.append((n, "RUN downloads with curl/wget without a sha256sum -c check"))
        elif word == "ADD":
            if re.search(r"https?://", rest) and "--checksum=sha256:" not in rest:
                problems.append((n, "ADD of a URL without --checksum=sha256:"))
    return [f"{path}:{n}: {message}" for n, message in problems]


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: check-dockerfiles.py DOCKERFILE...")
    problems = [p for path in sys.argv[1:] for p in check(path)]
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
