#!/usr/bin/env bash
# Eval runs whose JSON reports are saved as benchmarks/eval_*.json (figures in benchmarks/RESULTS.md).
# Usage: benchmarks/eval_runs.sh [model-free|model|public|all]   (from the repo root)
# Model runs are slow on a 2-core CPU; MAX_NEW (default 32), BUDGET (prompt tokens, default 3072) and
# LIMIT (default: all items) bound them. These defaults are the settings of the reports in RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
B=benchmarks
MAX_NEW=${MAX_NEW:-32}
BUDGET=${BUDGET:-3072}
MODEL_OPTS="--max-new-tokens $MAX_NEW --set memo.budget=$BUDGET --set memo.candidates=3"
LIMIT=${LIMIT:+--limit $LIMIT}
what=${1:-all}

model_free() {
  for d in finance legal bio; do
    m3analyst eval "$d" --model none --out "$B/eval_${d}_none.json" --html
  done
  m3analyst eval finance --dataset financebench --data-root ../shared/corpus/finance --model none --out "$B/eval_financebench_none.json"
  m3analyst eval legal --dataset cuad --model none --out "$B/eval_cuad_none.json"
  m3analyst eval bio --dataset evidence-inference --model none --out "$B/eval_evidence-inference_none.json"
}

model() {  # default model, MSA then dense on the same items; dense compared with MSA
  for d in finance legal bio; do
    m3analyst eval "$d" --attention msa $MODEL_OPTS $LIMIT --out "$B/eval_${d}_msa.json" --html
    m3analyst eval "$d" --attention dense $MODEL_OPTS $LIMIT --out "$B/eval_${d}_dense.json" \
      --compare "$B/eval_${d}_msa.json" || true   # a regression must not stop the script
  done
}

public() {  # the 25 FinanceBench dev questions with the default model
  m3analyst eval finance --dataset financebench --data-root ../shared/corpus/finance $MODEL_OPTS \
    --out "$B/eval_financebench_msa.json"
}

case "$what" in
  model-free) model_free ;;
  model) model ;;
  public) public ;;
  all) model_free; model; public ;;
  *) echo "usage: $0 [model-free|model|public|all]" >&2; exit 2 ;;
esac
