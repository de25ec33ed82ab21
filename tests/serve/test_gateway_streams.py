# ruff: noqa: F811  (pytest fixtures imported from gateway_harness are parameters here)
"""A streamed request's budget hold comes back however the stream ends: the client leaving before the
first byte or mid-stream, or the upstream failing mid-way; with budgets in process and in Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_harness import ADMIN, mock_upstream, redis_url, run_gateway  # noqa: F401 (fixtures)

from rankroute.serve.gateway import _ClosingStream

pytestmark = [pytest.mark.network]

BODY = {"model": "small", "messages": [{"role": "user", "content": "x"}], "stream": True, "max_tokens": 16}


@pytest.fixture(params=["in-process", "redis"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The storage section: budgets in this process, or in a real Redis started for the module."""
    ledger = {"ledger": str(tmp_path / "ledger.sqlite")}
    if request.param == "redis":
        return {**ledger, "redis_url": request.getfixturevalue("redis_url")}
    return ledger


def _config(upstream_url: str, storage: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    deployment = {
        "name": "small",
        "base_url": upstream_url,
        "input_price_per_m": 1000.0,
        "output_price_per_m": 1000.0,
        "timeout_s": timeout_s,
    }
    return {"deployments": [deployment], "keys": {"required": True}, "storage": storage}


def _new_key(gw: Any) -> dict[str, Any]:
    with gw.admin() as admin:
        created: dict[str, Any] = admin.post("/admin/keys", json={"name": "s", "budget_usd": 5.0}).json()
    return created


def _wait_released(gw: Any, key_id: str, within_s: float = 5.0) -> tuple[dict[str, Any], int | None]:
    """The key's books once nothing is held (or after within_s), and its last ledger status."""
    deadline = time.monotonic() + within_s
    with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {ADMIN}"}) as admin:
        while True:
            books = next(k for k in admin.get("/admin/keys").json()["data"] if k["key_id"] == key_id)
            if books["reserved_usd"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        rows = [r for r in admin.get("/admin/spend").json()["data"] if r["key_id"] == key_id]
    return books, rows[0]["status"] if rows else None


@pytest.mark.parametrize("drop", ["before-first-byte", "mid-stream"])
def test_a_dropped_stream_gives_its_hold_back_at_once(mock_upstream, storage, drop) -> None:
    """The upstream stalls for 30 s mid-stream; the client leaves early; the hold comes back in seconds."""
    upstream = mock_upstream(stall_rate=1.0, stall_s=30.0, delay_s=0.3 if drop == "before-first-byte" else 0)
    with run_gateway(_config(upstream.url, storage, timeout_s=60)) as gw:
        created = _new_key(gw)
        headers = {"authorization": f"Bearer {created['key']}"}
        with httpx.Client(base_url=gw.url, headers=headers, timeout=10) as http:
            if drop == "before-first-byte":
                with pytest.raises(httpx.ReadTimeout):
                    http.post("/v1/chat/completions", json=BODY, timeout=0.1)
            else:
                with http.stream("POST", "/v1/chat/completions", json=BODY) as reply:
                    assert next(reply.iter_raw()).startswith(b"data: ")
        books, status = _wait_released(gw, created["key_id"])
        in_flight = gw.gateway.ready()["deployments"]["small"]["in_flight"]
    assert books["reserved_usd"] == 0 and status == 499 and in_flight == 0
    assert 0 < books["spent_usd"] <= 0.2  # what was produced is booked, not the whole hold


def test_a_stream_whose_upstream_times_out_mid_way_gives_its_hold_back(mock_upstream, storage) -> None:
    upstream = mock_upstream(stall_rate=1.0, stall_s=30.0)
    with run_gateway(_config(upstream.url, storage, timeout_s=0.5)) as gw:
        created = _new_key(gw)
        with gw.client(created["key"]) as http:
            reply = http.post("/v1/chat/completions", json=BODY)
        assert b"upstream_stream_broken" in reply.content
        books, status = _wait_released(gw, created["key_id"])
    assert books["reserved_usd"] == 0 and status == 502


def test_the_relay_is_closed_when_the_client_is_gone_before_the_body_starts() -> None:
    """Under ASGI 2.4 a send to a closed socket raises before Starlette iterates the body, so the body
    generator never starts and its own `finally` never runs; the response must close the relay itself."""
    closed: list[str] = []
    started: list[bool] = []

    async def body() -> AsyncIterator[bytes]:
        started.append(True)
        yield b"data: {}\n\n"

    async def on_close() -> None:
        closed.append("closed")

    async def scenario() -> None:
        async def receive() -> dict[str, Any]:
            await asyncio.sleep(10)  # the server has not noticed the disconnect yet
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            raise OSError("client went away")

        response = _ClosingStream(body(), on_close, media_type="text/event-stream")
        await response({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, send)

    asyncio.run(scenario())
    assert closed == ["closed"] and started == []
