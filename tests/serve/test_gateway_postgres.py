# ruff: noqa: F811  (pytest fixtures imported from gateway_harness are parameters here)
"""The ledger and keys on a real PostgreSQL server, started by the test in a tmp dir on a loopback port."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from gateway_harness import (  # noqa: F401 (fixtures)
    free_port,
    gateway_config,
    mock_upstream,
    split_burst,
    start_gateway,
)

from rankroute.serve.storage import GatewayStore

pytestmark = [pytest.mark.network, pytest.mark.slow]

CHAT = {"model": "small", "messages": [{"role": "user", "content": "x"}]}


def test_keys_and_spend_persist_in_postgres(postgres_dsn: str) -> None:
    async def scenario() -> tuple[dict[str, float], bool, bool, int]:
        store = GatewayStore(postgres_dsn)
        await store.open()
        secret, key = await store.create_key("pg-team", budget_usd=1.0)
        store.record_spend(("r1", 1.0, key.key_id, "small", "d", 10, 5, 0.25, 3.0, 200, 0))
        store.record_spend(("r2", 2.0, key.key_id, "small", "d", 10, 5, 0.5, 3.0, 200, 0))
        await store.close()
        reopened = GatewayStore(postgres_dsn)
        await reopened.open()
        spend = await reopened.spend_by_key()
        found = reopened.lookup(secret) is not None
        await reopened.revoke_key(key.key_id)
        revoked = reopened.lookup(secret) is None
        rows = len(await reopened.spend_rows())
        await reopened.close()
        return spend, found, revoked, rows

    spend, found, revoked, rows = asyncio.run(scenario())
    assert spend == {next(iter(spend)): pytest.approx(0.75)}
    assert found and revoked and rows == 2


def test_gateway_books_requests_in_postgres(postgres_dsn, mock_upstream, start_gateway) -> None:
    config = {
        "deployments": [{"name": "small", "base_url": mock_upstream().url, "input_price_per_m": 1.0}],
        "storage": {"ledger": postgres_dsn},
    }
    with start_gateway(config) as gw, gw.client() as http:
        body = {"model": "small", "messages": [{"role": "user", "content": "x"}]}
        request_id = http.post("/v1/chat/completions", json=body).headers["x-request-id"]
        with gw.admin() as admin:
            rows = admin.get("/admin/spend").json()["data"]
    assert request_id in [r["request_id"] for r in rows]


def _priced(upstream_url: str, postgres_dsn: str) -> dict[str, Any]:
    """Two replicas of this config share budgets through PostgreSQL alone (no Redis)."""
    deployment = {
        "name": "small",
        "base_url": upstream_url,
        "input_price_per_m": 1000.0,
        "output_price_per_m": 1000.0,
    }
    return {"deployments": [deployment], "keys": {"required": True}, "storage": {"ledger": postgres_dsn}}


def test_replicas_on_postgres_alone_never_spend_past_a_budget(
    postgres_dsn, mock_upstream, start_gateway
) -> None:
    upstream = mock_upstream(delay_s=0.01)
    budget = 0.3
    config = _priced(upstream.url, postgres_dsn)
    with start_gateway(config) as first, start_gateway(config) as second:
        with first.admin() as admin:
            created = admin.post("/admin/keys", json={"name": "pg", "budget_usd": budget}).json()

        statuses = split_burst(first, second, created["key"], {**CHAT, "max_tokens": 16}, 50)
        with first.admin() as admin:  # each replica writes its own ledger rows: flush both
            admin.get("/admin/spend")
        with second.admin() as admin:
            rows = admin.get("/admin/spend", params={"limit": 1000}).json()["data"]
            book = next(
                k for k in admin.get("/admin/keys").json()["data"] if k["key_id"] == created["key_id"]
            )
            assert admin.delete(f"/admin/keys/{created['key_id']}").status_code == 200
        with first.client(created["key"]) as http:  # revoked on the other replica: refused here at once
            refused = http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 16})
    assert set(statuses) == {200, 429} and statuses.count(200) == upstream.stats.requests
    spent = sum(r["cost_usd"] for r in rows if r["key_id"] == created["key_id"])
    assert 0 < spent <= budget
    assert book["spent_usd"] == pytest.approx(spent) and book["reserved_usd"] == pytest.approx(0)
    assert refused.status_code == 401


def test_replicas_on_postgres_alone_share_one_rate_limit(postgres_dsn, mock_upstream, start_gateway) -> None:
    """A 5-rpm key gets 5 requests in all, however 12 concurrent requests spread over two replicas."""
    upstream = mock_upstream()
    config = _priced(upstream.url, postgres_dsn)
    with start_gateway(config) as first, start_gateway(config) as second:
        with first.admin() as admin:
            created = admin.post("/admin/keys", json={"name": "pg-rpm", "rpm": 5}).json()
        statuses = split_burst(first, second, created["key"], CHAT, 12)
    assert statuses.count(200) == 5 and statuses.count(429) == 7
    assert upstream.stats.requests == 5


def test_postgres_holds_lapse_after_their_ttl(postgres_dsn: str) -> None:
    async def scenario() -> tuple[bool, bool, float]:
        store = GatewayStore(postgres_dsn)
        await store.open()
        key_id = "key_" + uuid.uuid4().hex
        crashed = await store.reserve_hold(key_id, "h1", 1.0, 0.9, 0.3)
        refused = await store.reserve_hold(key_id, "h2", 1.0, 0.5, 0.3)
        await asyncio.sleep(0.4)
        after = await store.reserve_hold(key_id, "h3", 1.0, 0.5, 0.3)
        held = (await store.budget_books([key_id]))[key_id][1]
        await store.close()
        return crashed[0] and not refused[0], after[0], held

    refused_then_ok, held_again, held = asyncio.run(scenario())
    assert refused_then_ok and held_again and held == pytest.approx(0.5)
