#!/usr/bin/env bash
# Local or hosted? Train the same data both ways, evaluate both, compare.
#
# Two gateway homes on this machine: B plays the provider (`gateway serve` with
# the local trainer behind its OpenAI-compatible fine-tuning API) and A is the
# team's gateway, which trains at B through litellm (`--trainer hosted`) and
# also trains locally. The prices in A's config are example figures.
#
#   scripts/local_or_hosted.sh [WORKDIR]      (default: ./local-or-hosted)
#
# SMOLLM2_PATH=folder reuses a converted SmolLM2-135M-Instruct instead of pulling it.
set -euo pipefail

work="$(mkdir -p "${1:-local-or-hosted}" && cd "${1:-local-or-hosted}" && pwd)"
data="$(cd "$(dirname "$0")/.." && pwd)/evalsets/support-tickets/train.jsonl"
port="${PORT:-8101}"
export HOME_A="$work/a" HOME_B="$work/b"
mkdir -p "$HOME_A" "$HOME_B"

as_a() { GATEWAY_HOME="$HOME_A" gateway "$@"; }
as_b() { GATEWAY_HOME="$HOME_B" gateway "$@"; }
register() {
  if [ -n "${SMOLLM2_PATH:-}" ]; then "$@" models add --path "$SMOLLM2_PATH" --name smollm2-135m --replace
  else "$@" models pull smollm2-135m; fi
}

register as_a
register as_b
B_KEY="$(as_b keys create --scope fine-tune --name provider-demo)"
export B_KEY

cat > "$HOME_A/config.toml" <<EOF
[providers.b]
provider = "openai"
api_base = "http://127.0.0.1:$port/v1"
api_key_env = "B_KEY"
training_cost_per_1m = 3.0
input_cost_per_1m = 0.30
output_cost_per_1m = 1.20
poll_interval = 2
EOF

as_b serve --port "$port" > "$work/b-server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/health" > /dev/null && break; sleep 1; done

# The demo's recipe both ways: 15 steps of 8 rows at learning rate 2e-3
# (hosted: 10 x the local default 2e-4, as OpenAI's learning_rate_multiplier).
time as_a train --base smollm2-135m --data "$data" --suffix support-local \
  --max-steps 15 --batch-size 8 --learning-rate 2e-3
time as_a train --trainer hosted --provider b --base smollm2-135m --data "$data" \
  --suffix support-hosted --max-steps 15 --batch-size 8 --set learning_rate_multiplier=10 --yes

as_a models list
runs="$(as_a eval support-tickets -m support-local@v1 -m support-hosted@v1 -q --format json \
  | python3 -c 'import json, sys; print(" ".join(r["run_id"] for r in json.load(sys.stdin)))')"
# shellcheck disable=SC2086
as_a compare $runs
