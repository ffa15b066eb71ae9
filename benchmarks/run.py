"""Measure the card's loop, the worker's generators and a real backfill side by side.

Every variant runs in its own process on the same paragraphs of the Spanish
sample, with every query forced to the same number of new tokens, so the
figures compare work rather than luck. The parent records the load average
around each variant and the child's peak RSS from its resource usage.

Usage::

    python benchmarks/run.py --model ~/.cache/d2q/bench/mt5-base-random \\
        --paragraphs 6 --output benchmarks/results/cpu.json

The backfill variants start their own OpenSearch node on ``--port`` (default
9290) through ``worker.cluster.local`` and stop it at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "squad-es-sample" / "corpus.jsonl"
VARIANTS_SCRIPT = Path(__file__).with_name("variants.py")

# name -> (kind, extra arguments). "{vocabulary}" is the model's
# output-vocabulary.txt.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "card": ("card", []),
    "torch": ("generator", ["--backend", "torch"]),
    "torch-vocab": (
        "generator",
        ["--backend", "torch", "--output-vocabulary", "{vocabulary}"],
    ),
    "ct2-int8": ("generator", ["--backend", "ctranslate2", "--compute-type", "int8"]),
    "ct2-int8-vocab": (
        "generator",
        [
            "--backend",
            "ctranslate2",
            "--compute-type",
            "int8",
            "--output-vocabulary",
            "{vocabulary}",
        ],
    ),
    "ct2-bf16-vocab": (
        "generator",
        [
            "--backend",
            "ctranslate2",
            "--compute-type",
            "bfloat16",
            "--output-vocabulary",
            "{vocabulary}",
        ],
    ),
    "ct2-int8bf16-vocab": (
        "generator",
        [
            "--backend",
            "ctranslate2",
            "--compute-type",
            "int8_bfloat16",
            "--output-vocabulary",
            "{vocabulary}",
        ],
    ),
    "backfill-torch": ("backfill", ["--backend", "torch"]),
    "backfill-fastest-1x": (
        "backfill",
        [
            "--backend",
            "ctranslate2",
            "--compute-type",
            "int8",
            "--output-vocabulary",
            "{vocabulary}",
        ],
    ),
    "backfill-fastest-10x": (
        "backfill",
        [
            "--backend",
            "ctranslate2",
            "--compute-type",
            "int8",
            "--output-vocabulary",
            "{vocabulary}",
        ],
    ),
}
CPU_VARIANTS = [name for name in VARIANTS if "bf16" not in name]


def select_paragraphs(model: str, count: int, max_tokens: int) -> list[str]:
    """Return the first ``count`` sample paragraphs that fit ``max_tokens``.

    Paragraphs that fit are neither truncated by the generators nor split by
    the backfill, so every variant sees the same inputs.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    chosen: list[str] = []
    with SAMPLE.open(encoding="utf-8") as handle:
        for line in handle:
            text = json.loads(line)["text"]
            if len(tokenizer(text)["input_ids"]) <= max_tokens:
                chosen.append(text)
            if len(chosen) == count:
                break
    return chosen


def run_child(arguments: list[str]) -> dict[str, Any]:
    """Run one variant process; return its JSON line, peak RSS and load average."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, str(VARIANTS_SCRIPT), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    # wait4 returns the child's own resource usage, peak RSS included.
    stdout_text = child.stdout.read() if child.stdout else ""
    stderr_text = child.stderr.read() if child.stderr else ""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"variant {arguments[0]} failed:\n{stderr_text[-4000:]}")
    result = json.loads(stdout_text.strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    result["process_seconds"] = wall
    result["load_before"] = [round(value, 2) for value in load_before]
    result["load_after"] = [round(value, 2) for value in os.getloadavg()]
    return result


def start_index(port: int, name: str, paragraphs: list[str], repeat: int) -> str:
    """Start the benchmark's node and index ``paragraphs`` ``repeat`` times."""
    from worker.cluster import local
    from worker.cluster.engine import ConnectionConfig, connect

    url = local.start(local.get_node("opensearch", port))
    engine = connect(ConnectionConfig(url=url))
    engine.client.indices.delete(index=name, ignore_unavailable=True)
    engine.client.indices.create(
        index=name,
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "properties": {"text": {"type": "text", "analyzer": "spanish"}}
            },
        },
    )
    lines = []
    for copy in range(repeat):
        for number, text in enumerate(paragraphs):
            lines.append(
                json.dumps({"index": {"_index": name, "_id": f"p{copy}-{number}"}})
            )
            lines.append(json.dumps({"text": text}, ensure_ascii=False))
    engine.client.bulk(body="\n".join(lines) + "\n", params={"refresh": "true"})
    return url


def summarise(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Add paragraphs/s, queries/s and the ratio to the card's loop."""
    card = results.get("card")
    base = card["paragraphs"] / card["seconds"] if card else None
    rows = []
    for name, result in results.items():
        rate = result["paragraphs"] * result.get("repeat", 1) / result["seconds"]
        rows.append(
            {
                "variant": name,
                "paragraphs": result["paragraphs"] * result.get("repeat", 1),
                "seconds": round(result["seconds"], 1),
                "paragraphs_per_s": round(rate, 4),
                "queries_per_s": round(rate * result["queries_per_paragraph"], 2),
                "ratio_to_card": round(rate / base, 2) if base else None,
                "peak_rss_mib": round(result["peak_rss_mib"]),
                "load_before": result["load_before"],
                "load_after": result["load_after"],
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """Format the summary rows as a Markdown table."""
    header = (
        "| variant | paragraphs | seconds | paragraphs/s | queries/s | x card | "
        "peak RSS MiB | load 1 min before/after |\n|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {row['variant']} | {row['paragraphs']} | {row['seconds']} | "
        f"{row['paragraphs_per_s']} | {row['queries_per_s']} | {row['ratio_to_card']} | "
        f"{row['peak_rss_mib']} | {row['load_before'][0]} / {row['load_after'][0]} |"
        for row in rows
    ]
    return header + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument("--paragraphs", type=int, default=6, help="sample paragraphs")
    parser.add_argument("--queries", type=int, default=20, help="queries per paragraph")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens per query")
    parser.add_argument("--max-input-tokens", type=int, default=320)
    parser.add_argument("--variants", default=",".join(CPU_VARIANTS))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=8, help="paragraphs per call")
    parser.add_argument("--max-batch-tokens", type=int, default=65_536)
    parser.add_argument(
        "--page-size", type=int, default=8, help="documents per page of the backfills"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="use the selected paragraphs this many times",
    )
    parser.add_argument(
        "--warmup", type=int, default=0, help="untimed paragraphs first"
    )
    parser.add_argument("--port", type=int, default=9290, help="benchmark node port")
    parser.add_argument("--output", type=Path, required=True, help="results JSON file")
    args = parser.parse_args()

    paragraphs = args.repeat * select_paragraphs(
        args.model, args.paragraphs, args.max_input_tokens
    )
    vocabulary = str(Path(args.model) / "output-vocabulary.txt")
    workdir = Path(tempfile.mkdtemp(prefix="d2q-bench-"))
    paragraphs_file = workdir / "paragraphs.json"
    paragraphs_file.write_text(
        json.dumps(paragraphs, ensure_ascii=False), encoding="utf-8"
    )
    common = [
        "--paragraphs-file",
        str(paragraphs_file),
        "--model",
        args.model,
        "--queries",
        str(args.queries),
        "--new-tokens",
        str(args.new_tokens),
        "--device",
        args.device,
        "--batch-size",
        str(args.batch_size),
        "--max-batch-tokens",
        str(args.max_batch_tokens),
    ]
    record: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": args.device,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
        },
        "paragraphs": len(paragraphs),
        "queries_per_paragraph": args.queries,
        "new_tokens": args.new_tokens,
        "results": {},
    }
    started_node = False
    try:
        for name in args.variants.split(","):
            kind, extra = VARIANTS[name]
            arguments = [
                kind,
                *common,
                *(value.format(vocabulary=vocabulary) for value in extra),
            ]
            if kind == "generator" and args.warmup:
                arguments += ["--warmup", str(args.warmup)]
            repeat = 10 if name.endswith("-10x") else 1
            if kind == "backfill":
                index = f"bench-{name}"
                url = start_index(args.port, index, paragraphs, repeat)
                started_node = True
                arguments += ["--url", url, "--index", index]
                arguments += ["--page-size", str(args.page_size)]
            print(
                f"{time.strftime('%H:%M:%S')} running {name}",
                file=sys.stderr,
                flush=True,
            )
            result = run_child(arguments)
            result["repeat"] = repeat
            result["paragraphs"] = len(paragraphs)
            result["queries_per_paragraph"] = args.queries
            record["results"][name] = result
            print(json.dumps({name: result}), file=sys.stderr, flush=True)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(record, indent=2), encoding="utf-8")
    finally:
        if started_node:
            from worker.cluster import local

            local.stop(local.get_node("opensearch", args.port))
    record["summary"] = summarise(record["results"])
    args.output.write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(markdown(record["summary"]))


if __name__ == "__main__":
    main()
