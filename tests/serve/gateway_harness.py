"""Test harness and fixtures: mock upstreams and the gateway under uvicorn on free 127.0.0.1 ports.

Test modules import the fixtures they use from here (no conftest, so `from shared_data import shared_path`
still names the project's root conftest)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from rankroute.serve import create_app, load_config
from rankroute.serve.mock import MockBehaviour, MockUpstream

ADMIN = "test-admin-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningGateway:
    def __init__(self, app: Any, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.gateway = app.state.gateway

    def client(self, key: str | None = None, timeout: float = 10.0) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def admin(self) -> httpx.Client:
        return self.client(ADMIN)


def split_burst(
    first: RunningGateway, second: RunningGateway, key: str, body: dict[str, Any], n: int
) -> list[int]:
    """Status codes of `n` concurrent chat requests with `key`, alternating between two replicas."""

    async def burst() -> list[httpx.Response]:
        headers = {"authorization": f"Bearer {key}"}
        async with (
            httpx.AsyncClient(base_url=first.url, headers=headers, timeout=30) as a,
            httpx.AsyncClient(base_url=second.url, headers=headers, timeout=30) as b,
        ):
            return await asyncio.gather(
                *((a if i % 2 else b).post("/v1/chat/completions", json=body) for i in range(n))
            )

    return [response.status_code for response in asyncio.run(burst())]


@contextmanager
def run_gateway(config: dict[str, Any], **kwargs: Any) -> Iterator[RunningGateway]:
    """Start the gateway on a free loopback port in a thread; stop it on exit."""
    app = create_app(load_config(config), admin_key=ADMIN, **kwargs)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("gateway did not start")
        time.sleep(0.02)
    try:
        yield RunningGateway(app, port)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def mock_upstream() -> Callable[..., MockUpstream]:
    """Factory of started mock upstreams, all stopped at teardown."""
    started: list[MockUpstream] = []

    def make(**behaviour: Any) -> MockUpstream:
        upstream = MockUpstream(MockBehaviour(**behaviour)).__enter__()
        started.append(upstream)
        return upstream

    yield make  # type: ignore[misc]
    for upstream in started:
        upstream.__exit__(None, None, None)


@pytest.fixture
def start_gateway() -> Callable[..., Any]:
    """`with start_gateway(config_dict, routers=...) as gw:` runs a real gateway on 127.0.0.1."""
    return run_gateway


@pytest.fixture
def gateway_config(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Build a config dict whose ledger lives in this test's tmp dir."""

    def make(deployments: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        storage = {"ledger": str(tmp_path / "ledger.sqlite"), **extra.pop("storage", {})}
        return {"deployments": deployments, "storage": storage, **extra}

    return make


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server not found (apt-get install -y redis-server)")
    pytest.importorskip("redis", reason="needs the redis client: pip install 'rankroute[serve]'")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="rankroute-redis-")
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.skip("redis-server did not start")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
