#!/usr/bin/env bats
# The composite actions' shape: bash steps that call a script beside action.yml, with every
# input passed through env and no expression inside a script body.

load lib/common

@test "every action passes all inputs through env and never expands expressions in run" {
  run "$REPO_ROOT/.venv/bin/python" - "$REPO_ROOT"/actions/*/action.yml <<'EOF2'
import os, re, sys, yaml
problems = []
for path in sys.argv[1:]:
    action = yaml.safe_load(open(path))
    where = os.path.relpath(path)
    if action.get("runs", {}).get("using") != "composite":
        problems.append(f"{where}: not a composite action")
        continue
    env_text = ""
    for i, step in enumerate(action["runs"]["steps"]):
        if step.get("shell") != "bash":
            problems.append(f"{where}: step {i} is not shell: bash")
        body = step.get("run", "")
        if "${{" in body:
            problems.append(f"{where}: step {i} expands an expression inside run")
        script = re.search(r'"\$GITHUB_ACTION_PATH/([^"]+)"', body)
        if not script:
            problems.append(f"{where}: step {i} does not call a script beside action.yml")
        elif not os.access(os.path.join(os.path.dirname(path), script.group(1)), os.X_OK):
            problems.append(f"{where}: {script.group(1)} is missing or not executable")
        env_text += "\n".join(str(v) for v in (step.get("env") or {}).values())
    for name in action.get("inputs", {}):
        if "${{ inputs.%s }}" % name not in env_text:
            problems.append(f"{where}: input {name} is not passed through env")
print("\n".join(problems))
sys.exit(1 if problems else 0)
EOF2
  assert_success
}

@test "the four actions exist" {
  for name in checkout setup-go setup-node setup-aws; do
    assert_file_exists "$REPO_ROOT/actions/$name/action.yml"
  done
}
