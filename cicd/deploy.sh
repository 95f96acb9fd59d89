#!/usr/bin/env bash
# The mlpipe CI/CD recipe, for any CI (CodeBuild runs it from cicd/buildspec.yml):
#   install -> test -> build and validate -> deploy -> (optionally) start and wait.
#
# Settings (environment variables):
#   MLPIPE_CONFIG        pipeline config to deploy            (default: config/examples/abalone.yaml)
#   MLPIPE_TARGET        stepfunctions | sagemaker             (default: stepfunctions)
#   MLPIPE_MODE          deploy | cloudformation (upload assets, write template.json)  (default: deploy)
#   MLPIPE_START         true: start a run and wait for it     (default: false)
#   MLPIPE_WAIT_TIMEOUT  seconds to wait for that run           (default: 7200)
#   MLPIPE_SKIP_TESTS    true: skip the test suite              (default: false)
#   MLPIPE_SKIP_INSTALL  true: reuse the installed .venv as is  (default: false)
#   MLPIPE_TEMPLATE      where cloudformation mode writes       (default: template.json)
#   MLPIPE_BUILD_DIR     where build output goes                (default: build)
#   PYTHON               interpreter for the virtualenv         (default: python3.11, else python3)
# Standard AWS settings apply (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL for an emulator).
set -euo pipefail
cd "$(dirname "$0")/.."

config=${MLPIPE_CONFIG:-config/examples/abalone.yaml}
target=${MLPIPE_TARGET:-stepfunctions}
out=${MLPIPE_BUILD_DIR:-build}
python=${PYTHON:-$(command -v python3.11 || command -v python3)}

step() { printf '\n==> %s\n' "$*"; }

if [ "${MLPIPE_SKIP_INSTALL:-false}" != "true" ]; then
  step "install"
  test -d .venv || "$python" -m venv .venv
  .venv/bin/pip install -q -e '.[dev]'
fi
mlpipe=.venv/bin/mlpipe

if [ "${MLPIPE_SKIP_TESTS:-false}" != "true" ]; then
  step "test"
  .venv/bin/python -m pytest -q -n 2 --dist loadfile
fi

step "build and validate ($config)"
"$mlpipe" build --config "$config" --target all --out "$out"
.venv/bin/statelint "$out/stepfunctions/state_machine.asl.json"
.venv/bin/python -m json.tool "$out/sagemaker/pipeline.json" > /dev/null
policies="$(mktemp)"   # not inside $out: build owns that directory and refuses foreign files
trap 'rm -f "$policies"' EXIT
"$mlpipe" iam-policy --config "$config" --output json > "$policies"
.venv/bin/python - "$policies" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
actions = []
def walk(node):
    if isinstance(node, dict):
        if "Action" in node:
            acts = node["Action"] if isinstance(node["Action"], list) else [node["Action"]]
            actions.extend(acts)
        for v in node.values():
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
walk(doc)
wild = [a for a in actions if "*" in a]
if wild:
    sys.exit(f"wildcard IAM actions: {wild}")
print(f"iam-policy: {len(actions)} actions, none with a wildcard")
PY

if [ "${MLPIPE_MODE:-deploy}" = "cloudformation" ]; then
  # A CodePipeline CloudFormation action deploys the template; here only what it refers to is
  # uploaded (content-addressed code assets and the Lambda zip).
  step "upload assets and export CloudFormation"
  "$mlpipe" deploy --config "$config" --target stepfunctions --assets-only
  "$mlpipe" export cloudformation --config "$config" --out "${MLPIPE_TEMPLATE:-template.json}"
  step "done"
  exit 0
fi

step "deploy ($target)"
"$mlpipe" deploy --config "$config" --target "$target"
"$mlpipe" describe --config "$config" --target "$target"

if [ "${MLPIPE_START:-false}" = "true" ]; then
  step "start and wait"
  "$mlpipe" start --config "$config" --target "$target" --wait --timeout "${MLPIPE_WAIT_TIMEOUT:-7200}"
fi
step "done"
