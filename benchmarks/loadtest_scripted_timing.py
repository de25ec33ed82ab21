"""Does the load tester measure what the server did, to the millisecond? A scripted server in its own
process writes the first token `--ttft-ms` after each request arrives and the next ones `--itl-ms` apart,
and reports in its last chunk when it actually wrote them (its own clock). rankroute's load tester and the
openai SDK's AsyncOpenAI streaming client timed llmperf-style (clock started before the call, first
content chunk) send the same requests; each run prints median TTFT, ITL and decode span beside the script
and the server's own times. Target (issue 6): within 1 ms of the script.

    python -m benchmarks.loadtest_scripted_timing --runs 3 --requests 32 --concurrency 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from rankroute.loadtest import LoadTestConfig, Script, arun_load_test, scripted_server_process

TARGET_MS = 1.0


@dataclass
class Row:
    client: str
    ttft_ms: list[float]
    itl_ms: list[float]
    decode_ms: list[float]
    tokens: set[int]
    server_first_ms: list[float]
    before_send_ms: list[float]


async def rankroute_run(url: str, requests: int, concurrency: int) -> Row:
    config = LoadTestConfig(
        base_url=url, concurrency=concurrency, requests=requests, warmup_requests=concurrency, max_tokens=64
    )
    run = await arun_load_test(config, ["hello there"])
    good = [r for r in run.results if r["ok"] and not r["warmup"]]
    return Row(
        "rankroute loadtest",
        [r["ttft_ms"] for r in good],
        [r["itl_ms"] for r in good],
        [r["latency_ms"] - r["ttft_ms"] for r in good],
        {r["output_tokens"] for r in good},
        [r["server_timings"]["first_token_ms"] for r in good],
        [r["before_send_ms"] for r in good],
    )


async def openai_run(url: str, requests: int, concurrency: int) -> Row:
    """The peer: AsyncOpenAI streaming, clock started before `create` as llmperf and vLLM's benchmark do."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="none", max_retries=0)
    row = Row("openai SDK (AsyncOpenAI)", [], [], [], set(), [], [])
    remaining = iter(range(requests + concurrency))

    async def user() -> None:
        for number in remaining:
            start = time.perf_counter()
            first = last = None
            tokens = 0
            server_first = None
            stream = await client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hello there"}],
                max_tokens=64,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                now = time.perf_counter()
                if chunk.choices and chunk.choices[0].delta.content:
                    first = first if first is not None else now
                    last = now
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
                timings = (chunk.model_extra or {}).get("timings")
                if isinstance(timings, dict):
                    server_first = timings["first_token_ms"]
            end = time.perf_counter()
            if number < concurrency or first is None or last is None or server_first is None:
                continue  # warm-up: one request per user, as the load tester does
            row.ttft_ms.append((first - start) * 1000)
            row.itl_ms.append((last - first) * 1000 / (tokens - 1))
            row.decode_ms.append((end - first) * 1000)
            row.tokens.add(tokens)
            row.server_first_ms.append(server_first)

    await asyncio.gather(*(user() for _ in range(concurrency)))
    await client.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ttft-ms", type=float, default=60.0)
    parser.add_argument("--itl-ms", type=float, default=15.0)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=220)
    load_before = os.getloadavg()
    script = Script(ttft_s=args.ttft_ms / 1000, itl_s=args.itl_ms / 1000, tokens=args.tokens)
    rows: list[Row] = []
    with scripted_server_process(script) as url:
        for _ in range(args.runs):
            rows.append(asyncio.run(rankroute_run(url, args.requests, args.concurrency)))
            rows.append(asyncio.run(openai_run(url, args.requests, args.concurrency)))
    load_after = os.getloadavg()
    decode_script = (args.tokens - 1) * args.itl_ms
    table = Table(
        title=(
            f"scripted timing: TTFT {args.ttft_ms:g} ms, ITL {args.itl_ms:g} ms, {args.tokens} tokens; "
            f"{args.runs} runs x {args.requests} requests, {args.concurrency} users; medians in ms; "
            f"target: within {TARGET_MS:g} ms of the script"
        )
    )
    columns = (
        "client",
        "TTFT",
        "- script",
        "server's own first token",
        "TTFT - server's",
        "ITL",
        "- script",
        "decode span",
        "- script",
        "tokens",
        "before send",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        ttft, itl, decode = (statistics.median(v) for v in (row.ttft_ms, row.itl_ms, row.decode_ms))
        server = statistics.median(row.server_first_ms)
        own_error = statistics.median(t - s for t, s in zip(row.ttft_ms, row.server_first_ms, strict=True))
        table.add_row(
            row.client,
            f"{ttft:.2f}",
            _against(ttft - args.ttft_ms),
            f"{server:.2f}",
            _against(own_error),
            f"{itl:.2f}",
            _against(itl - args.itl_ms),
            f"{decode:.2f}",
            _against(decode - decode_script),
            ",".join(str(t) for t in sorted(row.tokens)),
            f"{statistics.median(row.before_send_ms):.2f}" if row.before_send_ms else "in TTFT",
        )
    console.print(table)
    console.print(
        f"{os.cpu_count()} CPUs; load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )


def _against(difference: float) -> str:
    """A difference from the script, green within the target."""
    colour = "green" if abs(difference) <= TARGET_MS else "red"
    return f"[{colour}]{difference:+.2f}[/{colour}]"


if __name__ == "__main__":
    main()
