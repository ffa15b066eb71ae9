"""Check that a restricted output vocabulary covers what the full model would pick.

Two checks on the Spanish sample:

1. Model side: the full model generates queries for sample paragraphs with
   top-k sampling, and at every step the 10 highest-scoring pieces of the full
   output layer are compared with the restricted vocabulary. With the real
   doc2query model this shows whether the restriction removes pieces the model
   would sample. With random weights the top 10 are arbitrary pieces of the
   whole vocabulary, so coverage is about the restricted share of it, and the
   check shows only that the measurement runs.
2. Data side: the share of the pieces of the Spanish reference questions
   (squad-es-dev queries) that the restricted vocabulary contains. It depends
   on the tokenizer only, not on the weights.

Usage::

    python benchmarks/vocab_coverage.py --model ~/.cache/d2q/bench/mt5-base-random \\
        --vocabulary ~/.cache/d2q/bench/mt5-base-random/output-vocabulary.txt \\
        --questions data/squad-es-dev/queries.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from worker.model.vocabulary import read_output_vocabulary

SAMPLE = (
    Path(__file__).resolve().parents[1] / "data" / "squad-es-sample" / "corpus.jsonl"
)
TOP = 10


def model_coverage(
    model: Any, tokenizer: Any, allowed: set[int], args: argparse.Namespace
) -> dict[str, Any]:
    """Generate with the full model; count top-10 and sampled pieces inside ``allowed``."""
    with SAMPLE.open(encoding="utf-8") as handle:
        paragraphs = [json.loads(line)["text"] for line in handle][: args.paragraphs]
    top_inside = top_total = sampled_inside = sampled_total = 0
    missing: dict[int, int] = {}
    torch.manual_seed(args.seed)
    for paragraph in paragraphs:
        inputs = tokenizer(
            paragraph, return_tensors="pt", truncation=True, max_length=320
        )
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                do_sample=True,
                top_k=TOP,
                max_new_tokens=args.new_tokens,
                num_return_sequences=args.queries,
                output_logits=True,
                return_dict_in_generate=True,
            )
        for step_logits in output.logits:
            for token_id in step_logits.topk(TOP, dim=-1).indices.flatten().tolist():
                top_total += 1
                if token_id in allowed:
                    top_inside += 1
                else:
                    missing[token_id] = missing.get(token_id, 0) + 1
        for token_id in output.sequences[:, 1:].flatten().tolist():
            if token_id != tokenizer.pad_token_id:
                sampled_total += 1
                sampled_inside += token_id in allowed
    frequent = sorted(missing.items(), key=lambda item: -item[1])[:10]
    return {
        "paragraphs": len(paragraphs),
        "top10_coverage": top_inside / top_total,
        "sampled_coverage": sampled_inside / sampled_total,
        "top10_positions": top_total,
        "most_frequent_missing": [
            [tokenizer.convert_ids_to_tokens(token_id), count]
            for token_id, count in frequent
        ],
    }


def question_coverage(
    tokenizer: Any, allowed: set[int], questions: Path
) -> dict[str, Any]:
    """Return the share of reference question pieces inside ``allowed``."""
    with questions.open(encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle if line.strip()]
    inside = total = 0
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        total += len(ids)
        inside += sum(token_id in allowed for token_id in ids)
    return {"questions": len(texts), "pieces": total, "coverage": inside / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--vocabulary", required=True, type=Path)
    parser.add_argument("--questions", type=Path, help="JSONL of reference questions")
    parser.add_argument("--paragraphs", type=int, default=10)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model).eval()
    allowed = set(read_output_vocabulary(args.vocabulary, tokenizer))
    report: dict[str, Any] = {
        "model": args.model,
        "vocabulary_pieces": len(allowed),
        "full_vocabulary": model.config.vocab_size,
        "model_side": model_coverage(model, tokenizer, allowed, args),
    }
    if args.questions:
        report["data_side"] = question_coverage(tokenizer, allowed, args.questions)
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
