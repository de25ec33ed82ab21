"""What the gateway adds per request: direct to a mock upstream, through rankroute, through LiteLLM's proxy.

Every party runs in its own process: the mock upstream (raw asyncio), the rankroute gateway (uvicorn,
one worker), LiteLLM's proxy (its own venv, one worker) and the load generator (raw asyncio keep-alive
HTTP/1.1 client, so it is not the bottleneck). Same request, same upstream, one run.

    python -m benchmarks.gateway_overhead [--seconds 8] [--litellm /tmp/litellm-venv/bin/litellm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

BODY = json.dumps(
    {
        "model": "small",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 16,
    }
).encode()
PEER_VENVS = ("benchmarks/.venv-peer/bin/litellm", "/tmp/litellm-venv/bin/litellm")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- load generator (runs in its own process) ---------------------------------------------------------------
async def read_http_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response (content-length or chunked), read off a keep-alive stream."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value)
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        parts.append((await reader.readexactly(size + 2))[:-2])
        if size == 0:
            return status, b"".join(parts)


async def _worker(
    port: int,
    path: str,
    deadline: float,
    warm_until: float,
    out: list[float],
    errors: list[int],
    token: str = "sk-bench",
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {token}\r\ncontent-length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    while True:
        t0 = time.perf_counter()
        if t0 >= deadline:
            break
        writer.write(request)
        status, _ = await read_http_response(reader)
        t1 = time.perf_counter()
        if status != 200:
            errors.append(status)
        elif t0 >= warm_until:
            out.append(t1 - t0)
    writer.close()


async def _load(
    port: int, path: str, concurrency: int, seconds: float, warmup: float, token: str = "sk-bench"
) -> dict[str, Any]:
    start = time.perf_counter()
    warm_until, deadline = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    errors: list[int] = []
    await asyncio.gather(
        *(_worker(port, path, deadline, warm_until, latencies, errors, token) for _ in range(concurrency))
    )
    lat = np.asarray(latencies) * 1000
    return {
        "n": len(lat),
        "errors": len(errors),
        "rps": len(lat) / seconds,
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
    }


def loadgen_main(argv: list[str]) -> None:
    port, path, concurrency, seconds, warmup = (
        int(argv[0]),
        argv[1],
        int(argv[2]),
        float(argv[3]),
        float(argv[4]),
    )
    token = argv[5] if len(argv) > 5 else "sk-bench"
    try:
        import uvloop

        result = uvloop.run(_load(port, path, concurrency, seconds, warmup, token))
    except ImportError:
        result = asyncio.run(_load(port, path, concurrency, seconds, warmup, token))
    print(json.dumps(result))


def overhead_table(title: str, results: dict[tuple[str, int], dict[str, Any]]) -> Table:
    """One row per (target, concurrency) cell; "added p50" is against the `direct` cell of its concurrency."""
    table = Table(title=title)
    for column in ("concurrency", "target", "requests", "errors", "rps", "p50 ms", "p99 ms", "added p50 ms"):
        table.add_column(column, justify="right")
    for (name, conc), r in results.items():
        added = r["p50"] - results[("direct", conc)]["p50"]
        table.add_row(
            str(conc),
            name,
            str(r["n"]),
            str(r["errors"]),
            f"{r['rps']:.0f}",
            f"{r['p50']:.2f}",
            f"{r['p99']:.2f}",
            "" if name == "direct" else f"{added:.2f}",
        )
    return table


def run_load(
    port: int, path: str, concurrency: int, seconds: float, warmup: float = 1.0, token: str = "sk-bench"
) -> dict[str, Any]:
    """Run the load generator in its own process; `token` is sent as the bearer key."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.gateway_overhead",
            "--loadgen",
            str(port),
            path,
            str(concurrency),
            str(seconds),
            str(warmup),
            token,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + warmup + 60,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- the parties --------------------------------------------------------------------------------------------
def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            reply = httpx.post(
                url,
                content=BODY,
                headers={"content-type": "application/json", "authorization": "Bearer sk-bench"},
                timeout=5,
            )
            if reply.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not become ready in {timeout} s")


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}
    )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate the servers, killing any still up after 10 s."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description="gateway overhead vs LiteLLM")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--litellm", default=None, help="path to LiteLLM's `litellm` script (own venv)")
    parser.add_argument("--concurrency", default="1,16")
    args = parser.parse_args()
    console = Console()
    litellm = args.litellm or next((p for p in PEER_VENVS if Path(p).exists()), None)
    workdir = Path(tempfile.mkdtemp(prefix="rr-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up_port, rr_port, ll_port = free_port(), free_port(), free_port()
        procs.append(start([sys.executable, "-m", "rankroute.serve.mock", "--port", str(up_port)]))
        config = workdir / "gateway.yaml"
        config.write_text(
            f"deployments:\n  - name: small\n    base_url: http://127.0.0.1:{up_port}/v1\n"
            f"    input_price_per_m: 0.1\n    output_price_per_m: 0.2\n"
            f"storage:\n  ledger: {workdir / 'ledger.sqlite'}\n"
        )
        rankroute = str(Path(sys.executable).parent / "rankroute")
        procs.append(start([rankroute, "serve", "--config", str(config), "--port", str(rr_port)]))
        targets = {"direct": up_port, "rankroute": rr_port}
        if litellm:
            ll_config = workdir / "litellm.yaml"
            ll_config.write_text(
                "model_list:\n  - model_name: small\n    litellm_params:\n      model: openai/small\n"
                f"      api_base: http://127.0.0.1:{up_port}/v1\n      api_key: sk-upstream\n"
                "litellm_settings:\n  telemetry: false\n  set_verbose: false\n"
            )
            procs.append(
                start(
                    [litellm, "--config", str(ll_config), "--port", str(ll_port), "--num_workers", "1"],
                    env={
                        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                        "LITELLM_LOG": "ERROR",
                        # no key checks on either gateway: like for like
                        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
                    },
                )
            )
            targets["litellm"] = ll_port
        else:
            console.print("[yellow]LiteLLM not found: install it in benchmarks/.venv-peer (see docs)[/]")
        for port, proc in zip(targets.values(), procs, strict=True):
            wait_ready(f"http://127.0.0.1:{port}/v1/chat/completions", proc)
        results: dict[tuple[str, int], dict[str, Any]] = {}
        for conc in [int(c) for c in args.concurrency.split(",")]:
            for name, port in targets.items():
                results[(name, conc)] = run_load(port, "/v1/chat/completions", conc, args.seconds)
        console.print(
            overhead_table(f"Gateway overhead, one mock upstream, {args.seconds:.0f} s per cell", results)
        )
        if litellm:
            top = max(int(c) for c in args.concurrency.split(","))
            rr, ll = results[("rankroute", top)], results[("litellm", top)]
            console.print(
                f"at concurrency {top}: rankroute {rr['rps'] / ll['rps']:.1f}x LiteLLM's rps, "
                f"p99 {rr['p99']:.1f} ms vs {ll['p99']:.1f} ms ({rr['p99'] / ll['p99']:.2f} of LiteLLM's)"
            )
        print(json.dumps({f"{k[0]}@{k[1]}": v for k, v in results.items()}))
    finally:
        stop(procs)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        loadgen_main(sys.argv[2:])
    else:
        main()
