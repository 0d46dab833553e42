#!/usr/bin/env bash
# Behaviour or knowledge? `gateway diagnose` on regulated-wording and policy-knowledge.
#
# For each set: trains a LoRA on the set's train.jsonl (the demo's recipe), then
# runs `gateway diagnose` (base, base + few-shot, base + retrieval, fine-tune,
# fine-tune + retrieval on the same samples) and writes WORKDIR/NAME.json.
# The README's "Behaviour or knowledge?" figures come from this script.
#
#   scripts/diagnose_sets.sh [WORKDIR]      (default: ./diagnose-sets)
#
# SMOLLM2_PATH=folder reuses a converted SmolLM2-135M-Instruct instead of pulling it.
# STEPS (default 60), BATCH (rows per step, default 8), LIMIT (default: every
# sample), RETRIEVE (passages, default 4), FEWSHOT (default 3) and SETS (default
# "regulated-wording policy-knowledge"; names or folders) make shorter runs.
set -euo pipefail

work="$(mkdir -p "${1:-diagnose-sets}" && cd "${1:-diagnose-sets}" && pwd)"
root="$(cd "$(dirname "$0")/.." && pwd)"
export GATEWAY_HOME="$work/home"
base=smollm2-135m

if [ -n "${SMOLLM2_PATH:-}" ]; then gateway models add --path "$SMOLLM2_PATH" --name "$base" --replace
else gateway models pull "$base"; fi

for set in ${SETS:-regulated-wording policy-knowledge}; do
  if [ -d "$set" ]; then folder="$set"; else folder="$root/evalsets/$set"; fi
  name="$(basename "$folder")"
  echo "== $name: training on $folder/train.jsonl"
  time gateway train --base "$base" --data "$folder/train.jsonl" --suffix "$name-ft" \
    --max-steps "${STEPS:-60}" --batch-size "${BATCH:-8}" --learning-rate 2e-3
  echo "== $name: diagnose"
  time gateway diagnose "$folder" --base "$base" --fine-tune "$name-ft" \
    --retrieve "${RETRIEVE:-4}" --fewshot "${FEWSHOT:-3}" ${LIMIT:+--limit "$LIMIT"} -q \
    --format json > "$work/$name.json"
  gateway report --diagnosis "$name" -o "$work/$name.html"
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sentence"])' "$work/$name.json"
done
