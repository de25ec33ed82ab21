"""What a per-key rate-limit check costs as the key's window fills: in process and shared through Redis.

A key with a token limit is first given N admitted requests inside its 60 s window, then timed over
`--checks` more checks. The sliding window keeps a running token total per key, so a check should cost
the same at 10 or 10,000 requests in the window (a recount would grow with N, and in Redis a recount
also blocks every other client while the script runs).

    python -m benchmarks.rate_limits [--loads 10,1000,10000] [--checks 500] [--postgres URL]

With `--postgres` (a server URL; needs the [postgres] extra) a third column times the limiter replicas
share through the PostgreSQL ledger when there is no Redis, in a scratch database dropped afterwards.

Needs `redis-server` on PATH (apt-get install -y redis-server). No peer row: a cost check of our own
limiter; the gateway's overhead against LiteLLM's proxy is in benchmarks.gateway_overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.data_import import scratch_database
from benchmarks.gateway_replicas import start_redis
from rankroute.serve.limits import PostgresRateLimiter, RateLimiter, RedisRateLimiter
from rankroute.serve.storage import GatewayStore


async def per_check_ms(limiter: RateLimiter, load: int, checks: int) -> float:
    key = uuid.uuid4().hex
    for _ in range(load):
        await limiter.check(key, None, 10**12, 10)
    started = time.perf_counter()
    for _ in range(checks):
        await limiter.check(key, None, 10**12, 10)
    return (time.perf_counter() - started) / checks * 1e3


async def measure(
    loads: list[int], checks: int, redis_url: str, postgres_url: str | None
) -> list[list[float]]:
    """Per load: ms per check in process, through Redis, and through PostgreSQL (when given)."""
    shared: list[RateLimiter] = [RedisRateLimiter(redis_url)]
    store = GatewayStore(postgres_url) if postgres_url else None
    if store is not None:
        await store.open()
        shared.append(PostgresRateLimiter(store))
    try:
        return [
            [await per_check_ms(limiter, load, checks) for limiter in (RateLimiter(), *shared)]
            for load in loads
        ]
    finally:
        for limiter in shared:
            await limiter.close()
        if store is not None:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loads", default="10,1000,10000", help="admitted requests already in the window")
    parser.add_argument("--checks", type=int, default=500, help="timed checks per load")
    parser.add_argument("--postgres", help="also time the PostgreSQL limiter (server URL)")
    args = parser.parse_args()
    loads = [int(n) for n in args.loads.split(",")]
    with tempfile.TemporaryDirectory(prefix="rankroute-bench-") as workdir, contextlib.ExitStack() as stack:
        postgres_url = stack.enter_context(scratch_database(args.postgres)) if args.postgres else None
        redis, url = start_redis(Path(workdir))
        try:
            rows = asyncio.run(measure(loads, args.checks, url, postgres_url))
        finally:
            redis.terminate()
            redis.wait(timeout=10)
    table = Table(title=f"per-key rate-limit check, ms (mean of {args.checks})")
    columns = ["requests in window", "in process", "Redis (one Lua script)"]
    columns += ["PostgreSQL (one transaction)"] if args.postgres else []
    for column in columns:
        table.add_column(column, justify="right")
    for load, row in zip(loads, rows, strict=True):
        table.add_row(f"{load:,}", f"{row[0]:.4f}", *(f"{ms:.3f}" for ms in row[1:]))
    Console().print(table)


if __name__ == "__main__":
    main()
