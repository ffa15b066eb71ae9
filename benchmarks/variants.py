"""The measured variants; each runs in its own process, started by ``run.py``.

A variant reads its paragraphs from a JSON file, loads its model (not timed),
generates or backfills (timed) and prints one JSON line with its counts and
seconds. Peak RSS is measured by the parent from the child's resource usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def card_loop(args: argparse.Namespace, paragraphs: list[str]) -> dict[str, Any]:
    """Run the model card's loop: one generate call per paragraph, fp32."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model).to(args.device)
    started = time.perf_counter()
    queries = 0
    for paragraph in paragraphs:
        # As the card writes it, with --queries sequences and a forced length
        # in place of max_length=64.
        input_ids = tokenizer.encode(paragraph, return_tensors="pt").to(args.device)
        with torch.no_grad():
            outputs = model.generate(
                input_ids=input_ids,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                do_sample=True,
                top_p=0.95,
                top_k=10,
                num_return_sequences=args.queries,
            )
        decoded = [
            tokenizer.decode(output, skip_special_tokens=True) for output in outputs
        ]
        queries += len(decoded)
    return {"seconds": time.perf_counter() - started, "queries": queries}


def worker_generator(args: argparse.Namespace, paragraphs: list[str]) -> dict[str, Any]:
    """Pass all paragraphs to the worker's generator, which batches them by tokens."""
    from worker.model import GenerationConfig, load_generator

    config = GenerationConfig(
        model=args.model,
        backend=args.backend,
        device=args.device,
        batch_size=args.batch_size,
        queries_per_paragraph=args.queries,
        top_k=10,
        max_new_tokens=args.new_tokens,
        min_new_tokens=args.new_tokens,
        seed=args.seed,
        max_batch_tokens=args.max_batch_tokens,
        output_vocabulary=args.output_vocabulary,
        compute_type=args.compute_type,
    )
    loaded = time.perf_counter()
    generator = load_generator(config)
    load_seconds = time.perf_counter() - loaded
    if args.warmup:
        generator.generate(paragraphs[: args.warmup])
    started = time.perf_counter()
    results = generator.generate(paragraphs)
    seconds = time.perf_counter() - started
    queries = sum(len(per_paragraph) for per_paragraph in results)
    return {"seconds": seconds, "queries": queries, "load_seconds": load_seconds}


def backfill(args: argparse.Namespace, paragraphs: list[str]) -> dict[str, Any]:
    """Backfill a real index through the worker's pipeline, as ``d2q backfill``."""
    import os

    from worker.assembly import build_pipeline
    from worker.cluster.engine import ConnectionConfig, connect
    from worker.cluster.mapping import ensure_expansion_mapping
    from worker.settings import load_settings

    flags: dict[str, Any] = {
        "url": args.url,
        "index": args.index,
        "fields": ["text"],
        "model": args.model,
        "backend": args.backend,
        "device": args.device,
        "batch_size": args.batch_size,
        "queries_per_paragraph": args.queries,
        "max_new_tokens": args.new_tokens,
        "min_new_tokens": args.new_tokens,
        "seed": args.seed,
        "max_batch_tokens": args.max_batch_tokens,
        "output_vocabulary": args.output_vocabulary,
        "compute_type": args.compute_type,
        "page_size": args.page_size,
        "progress": False,
    }
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("D2Q_")
    }
    settings = load_settings(flags, environment)
    engine = connect(ConnectionConfig(url=args.url))
    ensure_expansion_mapping(
        engine, args.index, settings.expansion_field, settings.analyzer
    )
    loaded = time.perf_counter()
    pipeline = build_pipeline(settings, engine)
    load_seconds = time.perf_counter() - loaded
    generate_seconds = _time_generate(pipeline.generator)
    started = time.perf_counter()
    summary = pipeline.backfill()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "load_seconds": load_seconds,
        # The share of the backfill's wall time the model spent generating;
        # the rest is cluster work and paragraph handling that was not hidden.
        "generate_seconds": generate_seconds[0],
        "model_busy_share": generate_seconds[0] / seconds,
        "documents": summary.processed,
        "expanded": summary.expanded,
        "failed": summary.failed,
        "queries": summary.processed * args.queries,
    }


def _time_generate(generator: Any) -> list[float]:
    """Wrap ``generator.generate`` to add its seconds to the returned one-item list."""
    total = [0.0]
    generate = generator.generate

    def timed(paragraphs: list[str]) -> list[list[str]]:
        started = time.perf_counter()
        try:
            return generate(paragraphs)
        finally:
            total[0] += time.perf_counter() - started

    generator.generate = timed
    return total


VARIANTS = {"card": card_loop, "generator": worker_generator, "backfill": backfill}


def main() -> None:
    parser = argparse.ArgumentParser(description="run one benchmark variant")
    parser.add_argument("kind", choices=sorted(VARIANTS))
    parser.add_argument("--paragraphs-file", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--warmup", type=int, default=0, help="paragraphs generated before timing"
    )
    parser.add_argument("--compute-type", default="auto")
    parser.add_argument("--output-vocabulary")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-batch-tokens", type=int, default=65_536)
    parser.add_argument("--page-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url")
    parser.add_argument("--index")
    args = parser.parse_args()
    with open(args.paragraphs_file, encoding="utf-8") as handle:
        paragraphs = json.load(handle)
    result = VARIANTS[args.kind](args, paragraphs)
    result["paragraphs"] = len(paragraphs)
    print(json.dumps(result), file=sys.stdout, flush=True)


if __name__ == "__main__":
    main()
