"""SmolLM2 on ARC-Challenge with each in-process engine: xllamacpp (the prebuilt default) vs llama-cpp-python.

Each engine runs in its own process (peak RSS is per process), with the same threads, the same seeded
questions and the harness's own scoring path (Task.loglikelihoods on canonical answer tokens, acc_norm).
Reported per engine: accuracy, seconds per question, evaluated tokens/s, a short greedy chat (time to
first token, decode tokens/s), load time and peak RSS; then how far the engines' per-option
log-likelihoods differ and how often they pick the same option.

    nice -n 10 python -m benchmarks.local_engines --questions 50 --threads 1
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

ENGINES = {"xllamacpp": "xllamacpp", "llama-cpp-python": "llama_cpp_python"}
CHATS = [
    "What is the capital of France? Answer in one sentence.",
    "Name three primary colours.",
    "Why is the sky blue? Answer briefly.",
]


async def measure(engine: str, model: str, questions: int, threads: int) -> dict[str, Any]:
    """One engine in this process: load, one warm-up question, then the timed questions and chats."""
    from rankroute.backends import BackendConfig, DecodingParams, LocalBackend, make_backend
    from rankroute.backends.local import peak_rss_mb
    from rankroute.evaluate.tasks import get_task

    fields = {"name": model, "kind": "local", "engine": engine, "n_ctx": 2048, "n_threads": threads}
    config = BackendConfig.model_validate(fields)
    backend = make_backend(config)
    assert isinstance(backend, LocalBackend)
    started = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - started
    if engine == "xllamacpp" and backend.tokenizer is None:
        raise SystemExit(
            "xllamacpp needs the model's tokenizer for canonical tokens: pip install transformers gguf"
        )
    task = get_task("arc_challenge")
    instances = list(task.instances(limit=questions, seed=0))
    await task.loglikelihoods(backend, instances[0])  # warm-up: first-call allocations are not scoring
    correct, evaluated, compute_ms, logliks = 0.0, 0, 0.0, []
    started = time.perf_counter()
    for instance in instances:
        scores = await task.loglikelihoods(backend, instance)
        correct += task.score_choices(instance, scores.logliks).quality
        evaluated += scores.evaluated_tokens
        compute_ms += scores.compute_ms
        logliks.append(scores.logliks)
    scoring_s = time.perf_counter() - started
    chats = [
        await backend.chat([{"role": "user", "content": text}], DecodingParams(max_tokens=32))
        for text in CHATS
    ]
    await backend.aclose()
    return {
        "engine": engine,
        "version": importlib.metadata.version(ENGINES[engine]),
        "questions": len(instances),
        "accuracy": correct / len(instances),
        "s_per_question": scoring_s / len(instances),
        "eval_tokens_per_s": evaluated * 1000 / compute_ms if compute_ms else float("nan"),
        "ttft_ms": statistics.median(chat.ttft_ms or 0.0 for chat in chats),
        "decode_tokens_per_s": statistics.median(chat.tokens_per_s or 0.0 for chat in chats),
        "load_s": load_s,
        "peak_rss_mb": peak_rss_mb(),
        "logliks": logliks,
    }


def run_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    """One engine in a child process, so each peak RSS is that engine's alone."""
    command = [sys.executable, "-m", "benchmarks.local_engines", "--engine", engine]
    command += ["--model", args.model, "--questions", str(args.questions), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=50, help="ARC-Challenge questions (seeded sample)")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads, the same for both engines")
    parser.add_argument("--model", default="smollm2-135m", help="catalogue name or .gguf path")
    parser.add_argument("--engine", choices=sorted(ENGINES), help="(internal) measure one engine, print JSON")
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(asyncio.run(measure(args.engine, args.model, args.questions, args.threads))))
        return
    console = Console(width=150)
    load_before = os.getloadavg()
    results = [run_engine(engine, args) for engine in ENGINES]
    load_after = os.getloadavg()
    table = Table(title=f"{args.model} on {args.questions} ARC-Challenge questions, {args.threads} thread(s)")
    for column in ("engine", "version", "acc_norm", "s/question", "eval tok/s", "chat TTFT ms"):
        table.add_column(column, justify="left" if column in ("engine", "version") else "right")
    for column in ("decode tok/s", "load s", "peak RSS MB"):
        table.add_column(column, justify="right")
    for result in results:
        table.add_row(
            result["engine"],
            result["version"],
            f"{result['accuracy']:.3f}",
            f"{result['s_per_question']:.3f}",
            f"{result['eval_tokens_per_s']:.0f}",
            f"{result['ttft_ms']:.1f}",
            f"{result['decode_tokens_per_s']:.0f}",
            f"{result['load_s']:.2f}",
            f"{result['peak_rss_mb']:.0f}",
        )
    console.print(table)
    first, second = (result["logliks"] for result in results)
    gaps = np.abs(np.concatenate([np.subtract(a, b) for a, b in zip(first, second, strict=True)]))
    same = np.mean([np.argmax(a) == np.argmax(b) for a, b in zip(first, second, strict=True)])
    console.print(
        f"per-option log-likelihood |Δ| over {gaps.size} options: max {gaps.max():.4f}, "
        f"mean {gaps.mean():.4f} nats; same choice on {same:.0%} of questions"
    )
    console.print(
        "load average (1/5/15 min): before "
        + "/".join(f"{value:.2f}" for value in load_before)
        + ", after "
        + "/".join(f"{value:.2f}" for value in load_after)
    )


if __name__ == "__main__":
    main()
