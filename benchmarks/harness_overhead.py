"""Harness overhead: requests/s of `rankroute eval` vs lm-evaluation-harness on the same instant endpoint.

A minimal OpenAI-compatible server (its own process, answering at once) stands in for the model, so what is
measured is the harness: request building, HTTP client, scoring and storing. Both harnesses run as
subprocesses on the same GSM8K questions at concurrency 1/16/64: the first --requests questions of the
test set, repeated under new ids past its 1,319 (so --requests 3000 works for both). Two rates per run:
- request phase: requests / (last response - first request), timed by the server, the same clock for both;
- end to end: requests / wall time of the whole command (start-up, data loading, scoring, writing).

The peer is lm-eval's `local-chat-completions` model, installed in its own venv (never the project's):
    python3.11 -m venv /tmp/lmeval-venv && /tmp/lmeval-venv/bin/pip install "lm-eval[api]==0.4.13"
    python -m benchmarks.harness_overhead --peer-python /tmp/lmeval-venv/bin/python --requests 300 3000

The target (>= 2x lm-eval's requests/s) is judged per run size and concurrency on both rates; the verdict
table prints each ratio beside it. With two run sizes a last table gives each harness's wall time per extra
request (larger run minus smaller): the end-to-end ratio that runs of any size tend to, start-up left out.
Both rates share one ceiling: the instant server itself (one uvicorn process), so a request-phase ratio
near 1x can mean both clients saturate it: the script also prints the server's own rate against a bare
aiohttp client (non-streamed and streamed) as that ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from rich.console import Console
from rich.table import Table

GSM8K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmarks" / "gsm8k" / "test.jsonl"
RANKROUTE_GSM8K = Path(__file__).resolve().parents[1] / "src" / "rankroute" / "evaluate" / "tasks" / "builtin"
ANSWER = "Let me think. 6 + 7 = 13. The answer is 13."


# -- the endpoint ---------------------------------------------------------------------------------------
def serve(port: int) -> None:
    """Run the instant OpenAI-compatible server (blocking); GET /stats returns and resets its counters."""
    app = FastAPI()
    lock = threading.Lock()
    stats: dict[str, Any] = {"requests": 0, "first": None, "last": None}

    def mark_start() -> None:
        with lock:
            stats["requests"] += 1
            if stats["first"] is None:
                stats["first"] = time.time()

    def mark_end() -> None:
        with lock:
            stats["last"] = time.time()

    usage = {"prompt_tokens": 20, "completion_tokens": 14, "total_tokens": 34}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        mark_start()
        model = body.get("model", "bench")
        if body.get("stream"):

            async def chunks() -> Any:
                for piece in (ANSWER[:20], ANSWER[20:]):
                    delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                    yield "data: " + json.dumps({"id": "b", "model": model, "choices": [delta]}) + "\n\n"
                end = {"index": 0, "delta": {}, "finish_reason": "stop"}
                yield (
                    "data: "
                    + json.dumps({"id": "b", "model": model, "choices": [end], "usage": usage})
                    + "\n\n"
                )
                yield "data: [DONE]\n\n"
                mark_end()

            return StreamingResponse(chunks(), media_type="text/event-stream")
        mark_end()
        return {
            "id": "b",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}
            ],
            "usage": usage,
        }

    @app.get("/stats")
    async def read_stats() -> dict[str, Any]:
        with lock:
            out = dict(stats)
            stats.update(requests=0, first=None, last=None)
        return out

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def start_server(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.harness_overhead", "--serve", str(port)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/stats", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("benchmark server did not start")


def read_stats(port: int) -> dict[str, Any]:
    return dict(httpx.get(f"http://127.0.0.1:{port}/stats", timeout=5).json())


def server_ceiling(port: int, n: int, concurrency: int, stream: bool = False) -> float:
    """Requests/s of a bare aiohttp client with nothing else to do: what the endpoint itself can serve
    (streamed answers cost the server more: their ceiling is lower)."""
    import aiohttp

    body = {"model": "bench", "messages": [{"role": "user", "content": "What is 6 + 7?"}], "max_tokens": 64}
    body["stream"] = stream
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    async def burst() -> None:
        limit = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

            async def one() -> None:
                async with limit, session.post(url, json=body) as response:
                    await response.read()

            await asyncio.gather(*(one() for _ in range(n)))

    asyncio.run(burst())
    stats = read_stats(port)
    span = (stats["last"] or 0) - (stats["first"] or 0)
    return stats["requests"] / span if span > 0 else float("nan")


# -- the two harnesses ----------------------------------------------------------------------------------
def write_questions(work: Path, n: int) -> Path:
    """The first n GSM8K test questions, cycling past the end: row i is question i mod 1,319 under id i."""
    rows = GSM8K.read_text().splitlines()
    data = work / "gsm8k_bench.jsonl"
    data.write_text("".join(line + "\n" for line in itertools.islice(itertools.cycle(rows), n)))
    return data


def write_rankroute_task(work: Path, data: Path) -> Path:
    """rankroute's built-in gsm8k task (prompt, extraction, metric) over the benchmark's questions."""
    spec = yaml.safe_load((RANKROUTE_GSM8K / "gsm8k.yaml").read_text())
    spec.update(name="gsm8k_bench", source={"path": str(data)})
    path = work / "gsm8k_bench.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def timed(
    command: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run a command; its wall seconds and the CPU seconds (user + system) it and its children used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_rankroute(work: Path, task: Path, port: int, concurrency: int, stream: bool) -> tuple[float, float]:
    store = work / f"rankroute-{concurrency}-{stream}.duckdb"
    config = work / f"eval-{concurrency}-{stream}.yaml"
    config.write_text(
        json.dumps(
            {
                "run_name": f"overhead-c{concurrency}",
                "models": [
                    {
                        "name": "bench",
                        "kind": "openai",
                        "model": "bench",
                        "base_url": f"http://127.0.0.1:{port}/v1",
                        "stream": stream,
                        "max_concurrency": concurrency,
                    }
                ],
                "tasks": [{"name": str(task)}],
                "decoding": {"temperature": 0.0, "max_tokens": 64},
                "store": str(store),
                "concurrency": concurrency,
            }
        )
    )
    command = [
        sys.executable,
        "-c",
        "from rankroute.cli import main; main()",
        "eval",
        "--config",
        str(config),
    ]
    result, wall, cpu = timed(command)
    if result.returncode != 0:
        raise RuntimeError(f"rankroute eval failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return wall, cpu


def write_peer_task(work: Path, data: Path) -> Path:
    """An lm-eval task over the same GSM8K questions, read from a local JSONL (no hub access)."""
    task_dir = work / "peer_tasks"
    task_dir.mkdir(exist_ok=True)
    (task_dir / "gsm8k_local.yaml").write_text(
        "task: gsm8k_local\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\n'
        "doc_to_target: \"{{answer.split('#### ')[-1]}}\"\n"
        "generation_kwargs:\n  until: ['Question:']\n  max_gen_toks: 64\n  do_sample: false\n"
        "metric_list:\n  - metric: exact_match\n"
    )
    return task_dir


def run_peer(
    peer_python: str, work: Path, task_dir: Path, port: int, n: int, concurrency: int
) -> tuple[float, float]:
    args = [
        peer_python,
        "-m",
        "lm_eval",
        "--model",
        "local-chat-completions",
        "--model_args",
        f"model=bench,base_url=http://127.0.0.1:{port}/v1/chat/completions,"
        f"num_concurrent={concurrency},max_retries=3,tokenized_requests=False",
        "--include_path",
        str(task_dir),
        "--tasks",
        "gsm8k_local",
        "--apply_chat_template",
        "--limit",
        str(n),
        "--output_path",
        str(work / f"peer-{concurrency}"),
    ]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result, wall, cpu = timed(args, env)
    if result.returncode != 0:
        raise RuntimeError(f"lm-eval failed:\n{result.stderr[-3000:]}")
    return wall, cpu


def rate_row(
    name: str, concurrency: int, requests: int, phase: float, wall: float | None, cpu: float | None
) -> list[str]:
    return [
        name,
        str(concurrency),
        str(requests),
        f"{phase:,.0f}",
        f"{requests / wall:,.0f}" if wall else "-",
        f"{wall:.1f}" if wall else "-",
        f"{cpu:.1f}" if cpu else "-",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--requests",
        type=int,
        nargs="+",
        default=[300],
        help="run sizes; with two or more, also each harness's wall time per extra request",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--peer-python", default="/tmp/lmeval-venv/bin/python")
    parser.add_argument("--port", type=int, default=18431)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    console = Console(width=max(Console().width, 130))  # the table stays readable in a log
    has_peer = Path(args.peer_python).exists()
    if not has_peer:
        console.print(f"[yellow]no lm-eval at {args.peer_python}: measuring rankroute only[/]")
    sizes = sorted(set(args.requests))
    load_before = os.getloadavg()
    server = start_server(args.port)
    table = Table(
        title=f"harness overhead: {' and '.join(map(str, sizes))} GSM8K requests against an instant endpoint"
    )
    columns = (
        "harness",
        "concurrency",
        "requests",
        "request-phase req/s",
        "end-to-end req/s",
        "wall s",
        "CPU s",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "harness" else "right")
    verdicts = Table(title="target: rankroute >= 2x lm-eval's requests/s (non-streamed vs lm-eval)")
    for column in ("requests", "concurrency", "request phase", "end to end"):
        verdicts.add_column(column, justify="right")
    walls: dict[tuple[str, int, int], float] = {}  # (harness, concurrency, requests) -> wall s
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in sizes:
                work = Path(tmp) / str(n)
                work.mkdir()
                measure(console, table, verdicts, walls, work, n, args, has_peer)
    finally:
        server.terminate()
        server.wait(timeout=10)
    console.print(table)
    if has_peer:
        console.print(verdicts)
    if has_peer and len(sizes) > 1:
        console.print(per_request_table(walls, sizes[0], sizes[-1], args.concurrency))
    after = os.getloadavg()
    console.print(
        f"load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {' '.join(f'{x:.2f}' for x in after)} on {os.cpu_count()} CPUs"
    )


RANKROUTE, PEER = "rankroute", "lm-eval local-chat-completions"


def measure(
    console: Console,
    table: Table,
    verdicts: Table,
    walls: dict[tuple[str, int, int], float],
    work: Path,
    n: int,
    args: argparse.Namespace,
    has_peer: bool,
) -> None:
    """One run size: the endpoint's ceilings, then each harness, at every concurrency."""
    data = write_questions(work, n)
    task = write_rankroute_task(work, data)
    task_dir = write_peer_task(work, data)
    for concurrency in args.concurrency:
        read_stats(args.port)
        for stream, label in ((False, ""), (True, ", streamed")):
            ceiling = server_ceiling(args.port, n, concurrency, stream)
            name = f"(endpoint ceiling{label}: bare aiohttp)"
            table.add_row(*rate_row(name, concurrency, n, ceiling, None, None))
        runs: list[tuple[str, Callable[[], tuple[float, float]]]] = [
            (RANKROUTE, partial(run_rankroute, work, task, args.port, concurrency, False)),
            (
                f"{RANKROUTE} (streamed: + TTFT/ITL)",
                partial(run_rankroute, work, task, args.port, concurrency, True),
            ),
        ]
        if has_peer:
            runs.append(
                (PEER, partial(run_peer, args.peer_python, work, task_dir, args.port, n, concurrency))
            )
        rates: dict[str, tuple[float, float]] = {}
        for name, run in runs:
            wall, cpu = run()
            walls[(name, concurrency, n)] = wall
            stats = read_stats(args.port)
            span = (stats["last"] or 0) - (stats["first"] or 0)
            phase = stats["requests"] / span if span > 0 else float("nan")
            rates[name] = (phase, stats["requests"] / wall)
            table.add_row(*rate_row(name, concurrency, stats["requests"], phase, wall, cpu))
            console.print(
                f"{name} c={concurrency} n={n}: {phase:,.0f} req/s, wall {wall:.1f} s, CPU {cpu:.1f} s"
            )
        if has_peer:
            ours, peer = rates[RANKROUTE], rates[PEER]
            verdicts.add_row(
                str(n),
                str(concurrency),
                *(
                    f"{ours[k] / peer[k]:.2f}x "
                    + ("[green]met[/]" if ours[k] >= 2 * peer[k] else "[red]not met[/]")
                    for k in (0, 1)
                ),
            )


def per_request_table(
    walls: dict[tuple[str, int, int], float], small: int, large: int, concurrencies: list[int]
) -> Table:
    """Wall time each harness adds per extra request (largest run minus smallest): what the end-to-end
    ratio tends to as runs grow, start-up left out."""
    table = Table(
        title=f"end to end as runs grow: wall ms per extra request ({large} minus {small} requests)"
    )
    for column in ("concurrency", "rankroute ms", "lm-eval ms", "lm-eval / rankroute"):
        table.add_column(column, justify="right")
    for concurrency in concurrencies:
        ours, peer = (
            (walls[(name, concurrency, large)] - walls[(name, concurrency, small)]) * 1000 / (large - small)
            for name in (RANKROUTE, PEER)
        )
        ratio = peer / ours if ours > 0 else float("inf")
        verdict = "[green]>= 2x[/]" if ratio >= 2 else "[red]< 2x[/]"
        table.add_row(str(concurrency), f"{ours:.2f}", f"{peer:.2f}", f"{ratio:.2f}x {verdict}")
    return table


if __name__ == "__main__":
    main()
