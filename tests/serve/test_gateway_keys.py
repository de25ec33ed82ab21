# ruff: noqa: F811  (pytest fixtures imported from gateway_harness are parameters here)
"""Virtual keys (hashed), admin endpoints, budgets that hold under concurrency, rate limits, the ledger."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import Any

import httpx
import pytest
from gateway_harness import ADMIN, gateway_config, mock_upstream, start_gateway  # noqa: F401 (fixtures)

from rankroute.serve.storage import hash_key

pytestmark = pytest.mark.network

CHAT = {"model": "small", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


def _keyed_config(gateway_config, upstream: Any, **deployment: Any) -> dict[str, Any]:
    return gateway_config(
        [{"name": "small", "base_url": upstream.url, **deployment}], keys={"required": True}
    )


def test_admin_endpoints_need_the_admin_key(mock_upstream, start_gateway, gateway_config) -> None:
    with start_gateway(_keyed_config(gateway_config, mock_upstream())) as gw:
        for key in (None, "wrong", "rr-not-admin"):
            with gw.client(key) as http:
                assert http.post("/admin/keys", json={"name": "x"}).status_code == 401
                assert http.get("/admin/keys").status_code == 401
                assert http.delete("/admin/keys/key_x").status_code == 401
                assert http.get("/admin/spend").status_code == 401
        with gw.admin() as admin:
            created = admin.post("/admin/keys", json={"name": "team-a", "budget_usd": 1.5})
            assert created.status_code == 201
            assert created.json()["key"].startswith("rr-")
            assert admin.post("/admin/keys", json={"name": ""}).status_code == 400
            assert admin.post("/admin/keys", json={"name": "x", "budget_usd": -1}).status_code == 400


def test_keys_are_stored_hashed_and_checked(mock_upstream, start_gateway, gateway_config, tmp_path) -> None:
    upstream = mock_upstream()
    with start_gateway(_keyed_config(gateway_config, upstream)) as gw:
        with gw.admin() as admin:
            secret = admin.post("/admin/keys", json={"name": "team-a"}).json()["key"]
            listed = admin.get("/admin/keys").json()["data"]
        assert [k["name"] for k in listed] == ["team-a"] and secret not in str(listed)
        with gw.client() as anonymous:
            missing = anonymous.post("/v1/chat/completions", json=CHAT)
            assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
        with gw.client("rr-guessed-key") as guessed:
            assert guessed.post("/v1/chat/completions", json=CHAT).status_code == 401
            assert guessed.get("/v1/models").status_code == 401
        assert upstream.stats.requests == 0  # nothing without a valid key reached the upstream
        with gw.client(secret) as http:
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        stored = db.execute("SELECT key_hash FROM gateway_keys").fetchall()
        dump = "\n".join(db.iterdump())
    assert stored == [(hash_key(secret),)]
    assert secret not in dump


def test_revoked_key_is_refused_at_once(mock_upstream, start_gateway, gateway_config) -> None:
    upstream = mock_upstream()
    with start_gateway(_keyed_config(gateway_config, upstream)) as gw:
        with gw.admin() as admin:
            created = admin.post("/admin/keys", json={"name": "leaky"}).json()
        with gw.client(created["key"]) as http:
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
            with gw.admin() as admin:
                assert admin.delete(f"/admin/keys/{created['key_id']}").status_code == 200
                assert admin.delete(f"/admin/keys/{created['key_id']}").status_code == 404
            refused = http.post("/v1/chat/completions", json=CHAT)
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert upstream.stats.requests == 1


def test_keys_never_appear_in_logs(mock_upstream, start_gateway, gateway_config, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    upstream = mock_upstream(fail_rate=1.0)  # failures make the gateway log warnings about the request
    with start_gateway(_keyed_config(gateway_config, upstream)) as gw:
        with gw.admin() as admin:
            secret = admin.post("/admin/keys", json={"name": "quiet"}).json()["key"]
        with gw.client(secret) as http:
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 502
    assert "deployment small failed" in caplog.text
    assert secret not in caplog.text and ADMIN not in caplog.text
    assert upstream.stats.authorization == set()


def test_budget_holds_under_concurrency(mock_upstream, start_gateway, gateway_config) -> None:
    """60 concurrent requests against a budget that pays for a handful: spend never passes the budget."""
    upstream = mock_upstream(delay_s=0.02)
    # $0.001 per token both ways: a request costs ~$0.03 real, reserves up to (body bytes + 16) tokens
    config = _keyed_config(gateway_config, upstream, input_price_per_m=1000.0, output_price_per_m=1000.0)
    budget = 0.5
    with start_gateway(config) as gw:
        with gw.admin() as admin:
            created = admin.post("/admin/keys", json={"name": "capped", "budget_usd": budget}).json()

        async def burst() -> list[httpx.Response]:
            headers = {"authorization": f"Bearer {created['key']}"}
            async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=30) as http:
                return await asyncio.gather(
                    *(http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 16}) for _ in range(60))
                )

        replies = asyncio.run(burst())
        statuses = [r.status_code for r in replies]
        with gw.admin() as admin:
            rows = admin.get("/admin/spend", params={"limit": 1000}).json()["data"]
            key_state = admin.get("/admin/keys").json()["data"][0]
    assert statuses.count(200) >= 3 and statuses.count(429) >= 1
    refused = next(r for r in replies if r.status_code == 429).json()["error"]
    assert refused["code"] == "budget_exceeded" and refused["type"] == "insufficient_quota"
    spent = sum(r["cost_usd"] for r in rows if r["key_id"] == created["key_id"])
    assert 0 < spent <= budget
    assert key_state["spent_usd"] == pytest.approx(spent) and key_state["reserved_usd"] == pytest.approx(0)
    served = [r for r in rows if r["status"] == 200]
    assert len(served) == statuses.count(200)
    assert all(
        r["deployment"] == "small" and r["input_tokens"] > 0 and r["output_tokens"] == 4 for r in served
    )


def test_budget_is_remembered_across_restarts(mock_upstream, start_gateway, gateway_config) -> None:
    upstream = mock_upstream()
    config = _keyed_config(gateway_config, upstream, input_price_per_m=1000.0, output_price_per_m=1000.0)
    with start_gateway(config) as gw:
        with gw.admin() as admin:
            created = admin.post("/admin/keys", json={"name": "k", "budget_usd": 0.2}).json()
        with gw.client(created["key"]) as http:
            while http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 8}).status_code == 200:
                pass
    with start_gateway(config) as gw, gw.client(created["key"]) as http:
        again = http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 8})
        assert again.status_code == 429 and again.json()["error"]["code"] == "budget_exceeded"


def test_per_key_request_rate_limit(mock_upstream, start_gateway, gateway_config) -> None:
    with start_gateway(_keyed_config(gateway_config, mock_upstream())) as gw:
        with gw.admin() as admin:
            secret = admin.post("/admin/keys", json={"name": "slow", "rpm": 3}).json()["key"]
        with gw.client(secret) as http:
            statuses = [http.post("/v1/chat/completions", json=CHAT).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_ledger_writer_batches_off_the_hot_path(
    mock_upstream, start_gateway, gateway_config, tmp_path
) -> None:
    with start_gateway(gateway_config([{"name": "small", "base_url": mock_upstream().url}])) as gw:
        with gw.client() as http:
            for _ in range(20):
                assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
        deadline = time.monotonic() + 10.0  # the writer flushes every 0.2 s, later on a loaded machine
        while True:
            with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
                mode = db.execute("PRAGMA journal_mode").fetchone()[0]
                count = db.execute("SELECT COUNT(*) FROM gateway_spend WHERE status = 200").fetchone()[0]
            if count == 20 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert mode == "wal" and count == 20
