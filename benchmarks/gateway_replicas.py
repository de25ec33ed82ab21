"""What sharing budgets across gateway replicas costs per request, and that the budget still holds.

Parties in their own processes: a mock upstream, a real `redis-server` on a free port, and `rankroute
serve` replicas. Timed cells (same keep-alive load generator as benchmarks.gateway_overhead): direct to the
upstream; the gateway with no key; with a budgeted key whose books are in process (one replica); with the
same key's books in Redis (one of two replicas). Then the invariant under load: a key with a small budget
hammered through both replicas at once until it runs dry; its settled spend (read from the shared ledger)
must not pass its budget.

    python -m benchmarks.gateway_replicas [--seconds 8] [--concurrency 1,16]

The peer, LiteLLM's proxy, keeps multi-replica budgets in PostgreSQL (through Prisma) plus Redis; its proxy
database cannot be set up on this offline machine, so it has no row here (its single-replica overhead is in
benchmarks.gateway_overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from benchmarks.gateway_overhead import BODY, free_port, overhead_table, run_load, start, stop, wait_ready

ADMIN = "bench-admin-key"


def gateway_yaml(workdir: Path, upstream_port: int, redis_url: str | None) -> Path:
    path = workdir / f"gateway-{'redis' if redis_url else 'local'}.yaml"
    storage = f"  ledger: {workdir / 'ledger.sqlite'}\n" + (
        f"  redis_url: {redis_url}\n" if redis_url else ""
    )
    path.write_text(
        f"deployments:\n  - name: small\n    base_url: http://127.0.0.1:{upstream_port}/v1\n"
        "    input_price_per_m: 1000.0\n    output_price_per_m: 1000.0\n"
        f"storage:\n{storage}"
    )
    return path


def new_key(port: int, budget: float) -> dict[str, Any]:
    reply = httpx.post(
        f"http://127.0.0.1:{port}/admin/keys",
        json={"name": f"bench-{budget}", "budget_usd": budget},
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    reply.raise_for_status()
    created: dict[str, Any] = reply.json()
    return created


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server not found (apt-get install -y redis-server)")
    port = free_port()
    proc = start([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)])
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc, f"redis://127.0.0.1:{port}/0"
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


async def hammer(ports: list[int], secret: str, requests: int, concurrency: int) -> list[int]:
    """`requests` calls spread evenly over the replicas, `concurrency` at a time; their statuses."""
    headers = {"authorization": f"Bearer {secret}"}
    limits = asyncio.Semaphore(concurrency)
    clients = [
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", headers=headers, timeout=30) for p in ports
    ]

    async def one(i: int) -> int:
        async with limits:
            reply = await clients[i % len(clients)].post("/v1/chat/completions", content=BODY)
            return reply.status_code

    try:
        return list(await asyncio.gather(*(one(i) for i in range(requests))))
    finally:
        for client in clients:
            await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description="cost and correctness of budgets shared across replicas")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--budget", type=float, default=2.0, help="USD of the key hammered until it runs dry")
    args = parser.parse_args()
    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="rr-replicas-"))
    procs: list[subprocess.Popen[bytes]] = []
    env = {"RANKROUTE_ADMIN_KEY": ADMIN}
    rankroute = str(Path(sys.executable).parent / "rankroute")
    try:
        redis_proc, redis_url = start_redis(workdir)
        procs.append(redis_proc)
        up_port, local_port, rep1_port, rep2_port = free_port(), free_port(), free_port(), free_port()
        procs.append(start([sys.executable, "-m", "rankroute.serve.mock", "--port", str(up_port)]))
        local_cfg = gateway_yaml(workdir, up_port, None)
        shared_cfg = gateway_yaml(workdir, up_port, redis_url)
        for port, cfg in ((local_port, local_cfg), (rep1_port, shared_cfg), (rep2_port, shared_cfg)):
            procs.append(start([rankroute, "serve", "--config", str(cfg), "--port", str(port)], env=env))
        for port, proc in zip((up_port, local_port, rep1_port, rep2_port), procs[1:], strict=True):
            wait_ready(f"http://127.0.0.1:{port}/v1/chat/completions", proc)
        rich_key = new_key(local_port, 1e6)["key"]  # never runs dry: every timed request is served
        shared_key = new_key(rep1_port, 1e6)["key"]
        cells = {
            "direct": (up_port, "sk-bench"),
            "no key": (local_port, "sk-bench"),
            "budget, local": (local_port, rich_key),
            "budget, Redis": (rep1_port, shared_key),
        }
        results: dict[tuple[str, int], dict[str, Any]] = {}
        for conc in [int(c) for c in args.concurrency.split(",")]:
            for name, (port, token) in cells.items():
                results[(name, conc)] = run_load(
                    port, "/v1/chat/completions", conc, args.seconds, token=token
                )

        title = f"Budgets across replicas, one mock upstream, {args.seconds:.0f} s per cell"
        console.print(overhead_table(title, results))

        capped = new_key(rep2_port, args.budget)
        t0 = time.perf_counter()
        statuses = asyncio.run(hammer([rep1_port, rep2_port], capped["key"], 1500, 32))
        hammer_s = time.perf_counter() - t0
        rows = httpx.get(
            f"http://127.0.0.1:{rep1_port}/admin/spend",
            params={"limit": 10_000},
            headers={"authorization": f"Bearer {ADMIN}"},
            timeout=30,
        ).json()["data"]
        spent = sum(r["cost_usd"] for r in rows if r["key_id"] == capped["key_id"])
        served, refused = statuses.count(200), statuses.count(429)
        verdict = "[green]within budget[/]" if spent <= args.budget + 1e-9 else "[red]PAST BUDGET[/]"
        console.print(
            f"hammer: 1500 requests over 2 replicas, 32 at a time, {hammer_s:.1f} s: {served} served, "
            f"{refused} refused (budget), other {len(statuses) - served - refused}; settled spend "
            f"${spent:.4f} of ${args.budget:.2f} ({spent / args.budget:.3f}) {verdict}"
        )
        summary = {f"{k[0]}@{k[1]}": v for k, v in results.items()}
        summary["hammer"] = {"served": served, "refused": refused, "spent": spent, "budget": args.budget}
        print(json.dumps(summary))
    finally:
        stop(procs)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
