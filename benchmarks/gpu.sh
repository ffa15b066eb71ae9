#!/usr/bin/env bash
# Measure the generators on one GPU with the mT5-base shape, in under five minutes.
#
# Builds the random mT5-base-shaped model (about 40 s) and runs the card's loop
# on 10 paragraphs. Then it runs the worker's generators in bf16 with a large
# token budget on the Spanish sample repeated 4 times.
# Each paragraph gets 20 queries of 32 tokens, and each run.py call prints a
# Markdown table with queries/s per variant.
#
# Environment: PYTHON (default python3) with torch, transformers, sentencepiece,
# ctranslate2 and this repository's package importable; MODEL (default
# /tmp/d2q-bench/mt5-base-random); OUT (default benchmarks/results).
#
# NOTE: written for an H200 (141 GB); it was not run on a GPU yet, so the token
# budget and the repeat count are estimates to be tuned on the first run.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
MODEL=${MODEL:-/tmp/d2q-bench/mt5-base-random}
OUT=${OUT:-benchmarks/results}
CORPUS=data/squad-es-sample/corpus.jsonl
NEW_TOKENS=${NEW_TOKENS:-32}
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p "$OUT"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [ ! -f "$MODEL/config.json" ]; then
    "$PYTHON" benchmarks/build_model.py --target "$MODEL" --corpus "$CORPUS"
fi

# The card's loop, one paragraph per generate call, fp32 on the GPU.
timeout 60 "$PYTHON" benchmarks/run.py --model "$MODEL" --device cuda \
    --paragraphs 10 --new-tokens "$NEW_TOKENS" --variants card \
    --output "$OUT/gpu-card-$STAMP.json"

# The worker's generators: bf16 torch, CTranslate2 bf16 and int8 with the
# restricted vocabulary. About 1,100 paragraphs, 22,000 queries per variant.
timeout 180 "$PYTHON" benchmarks/run.py --model "$MODEL" --device cuda \
    --paragraphs 300 --repeat 4 --warmup 64 --new-tokens "$NEW_TOKENS" \
    --batch-size 512 --max-batch-tokens 4000000 \
    --variants torch,torch-vocab,ct2-bf16-vocab,ct2-int8bf16-vocab \
    --output "$OUT/gpu-generators-$STAMP.json"
