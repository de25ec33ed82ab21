# ruff: noqa: F811  (pytest fixtures imported from gateway_harness are parameters here)
"""Several gateway replicas sharing one Redis (started by the test) and one ledger: budgets, revocations
and the response cache hold across replicas; holds lapse after their TTL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from gateway_harness import mock_upstream, redis_url, run_gateway, split_burst  # noqa: F401 (fixtures)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankroute.serve.cache import RedisResponseCache
from rankroute.serve.limits import BudgetExceeded, RedisBudgets

pytestmark = [pytest.mark.network, pytest.mark.slow]

CHAT = {"model": "small", "messages": [{"role": "user", "content": "x"}]}


def _config(upstream_url: str, ledger: Path, redis: str, **extra: Any) -> dict[str, Any]:
    # $0.001 per token both ways: a request costs ~$0.012 real and holds up to ~$0.1 (body bytes + 16)
    deployment = {
        "name": "small",
        "base_url": upstream_url,
        "input_price_per_m": 1000.0,
        "output_price_per_m": 1000.0,
        **extra.pop("deployment", {}),
    }
    return {
        "deployments": [deployment],
        "keys": {"required": True},
        "storage": {"ledger": str(ledger), "redis_url": redis},
        **extra,
    }


def _new_key(gateway: Any, **spec: Any) -> dict[str, Any]:
    with gateway.admin() as admin:
        created: dict[str, Any] = admin.post("/admin/keys", json={"name": "shared", **spec}).json()
    return created


def _books(gateway: Any, key_id: str) -> dict[str, Any]:
    with gateway.admin() as admin:
        keys = admin.get("/admin/keys").json()["data"]
    return next(k for k in keys if k["key_id"] == key_id)


def test_replicas_hammered_at_once_never_spend_past_a_shared_budget(
    redis_url, mock_upstream, tmp_path
) -> None:
    """80 concurrent requests spread over two replicas: the key's settled spend stays within its budget."""
    upstream = mock_upstream(delay_s=0.01)
    budget = 0.4
    config = _config(upstream.url, tmp_path / "ledger.sqlite", redis_url)
    with run_gateway(config) as first, run_gateway(config) as second:
        created = _new_key(first, budget_usd=budget)

        statuses = split_burst(first, second, created["key"], {**CHAT, "max_tokens": 16}, 80)
        with second.admin() as admin:  # each replica writes its own ledger rows: flush both
            admin.get("/admin/spend")
        with first.admin() as admin:
            rows = admin.get("/admin/spend", params={"limit": 1000}).json()["data"]
        books = [_books(first, created["key_id"]), _books(second, created["key_id"])]
    assert set(statuses) == {200, 429} and statuses.count(200) >= 3
    spent = sum(r["cost_usd"] for r in rows if r["key_id"] == created["key_id"])
    assert 0 < spent <= budget
    assert len([r for r in rows if r["status"] == 200]) == statuses.count(200) == upstream.stats.requests
    for book in books:  # both replicas read the same shared books, with nothing left held
        assert book["spent_usd"] == pytest.approx(spent) and book["reserved_usd"] == pytest.approx(0)


def test_a_replica_starts_from_the_ledger_and_never_lowers_shared_spend(
    redis_url, mock_upstream, tmp_path
) -> None:
    """Spend booked before Redis knew the key comes from the ledger; the larger of the two wins."""
    upstream = mock_upstream()
    ledger = tmp_path / "ledger.sqlite"
    local_only = {**_config(upstream.url, ledger, redis_url), "storage": {"ledger": str(ledger)}}
    with run_gateway(local_only) as alone:
        created = _new_key(alone, budget_usd=1.0)
        with alone.client(created["key"]) as http:
            assert http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 16}).status_code == 200
        ledger_spent = _books(alone, created["key_id"])["spent_usd"]
    with run_gateway(_config(upstream.url, ledger, redis_url)) as replica:
        from_ledger = _books(replica, created["key_id"])
    import redis

    redis.Redis.from_url(redis_url).set(f"rankroute:budget:{{{created['key_id']}}}:spent", "0.3")
    with run_gateway(_config(upstream.url, ledger, redis_url)) as replica:
        kept = _books(replica, created["key_id"])
    assert ledger_spent > 0 and from_ledger["spent_usd"] == pytest.approx(ledger_spent)
    assert kept["spent_usd"] == pytest.approx(0.3)  # Redis knew more than the ledger: not lowered


@pytest.mark.parametrize("budget", [5.0, None], ids=["budgeted", "unbudgeted"])
def test_a_key_revoked_on_one_replica_is_refused_by_every_replica(
    redis_url, mock_upstream, tmp_path, budget
) -> None:
    """Checked in the budget's reservation for a budgeted key, on its own otherwise; a cached answer is
    no way around it."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()  # no cached answer from an earlier test
    upstream = mock_upstream()
    config = _config(upstream.url, tmp_path / "ledger.sqlite", redis_url, cache={"enabled": True})
    greedy = {**CHAT, "temperature": 0, "max_tokens": 16}
    with run_gateway(config) as first, run_gateway(config) as second:
        created = _new_key(first, budget_usd=budget)  # made after `second` started: found in the ledger
        with first.client(created["key"]) as a, second.client(created["key"]) as b:
            assert a.post("/v1/chat/completions", json=greedy).status_code == 200
            assert b.post("/v1/chat/completions", json=greedy).headers["x-rankroute-cache"] == "hit"
            assert b.post("/v1/chat/completions", json=CHAT).status_code == 200
            with first.admin() as admin:
                assert admin.delete(f"/admin/keys/{created['key_id']}").status_code == 200
            for http in (b, a):
                for body in (CHAT, greedy):
                    refused = http.post("/v1/chat/completions", json=body)
                    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert upstream.stats.requests == 2


def test_the_response_cache_is_shared_bounded_and_skips_errors_and_sampling(
    redis_url, mock_upstream, tmp_path
) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    upstream = mock_upstream()
    config = _config(
        upstream.url, tmp_path / "ledger.sqlite", redis_url, cache={"enabled": True, "max_entries": 2}
    )
    config["keys"] = {"required": False}
    greedy = {**CHAT, "temperature": 0}
    with run_gateway(config) as first, run_gateway(config) as second:
        with first.client() as a, second.client() as b:
            assert "x-rankroute-cache" not in a.post("/v1/chat/completions", json=greedy).headers
            # the same request with its fields in another order is the same cache entry, on the other replica
            reordered = {"temperature": 0, "messages": CHAT["messages"], "model": "small"}
            hit = b.post("/v1/chat/completions", json=reordered)
            assert hit.status_code == 200 and hit.headers["x-rankroute-cache"] == "hit"
            assert upstream.stats.requests == 1
            for _ in range(2):  # sampled: never cached
                b.post("/v1/chat/completions", json={**CHAT, "temperature": 0.7})
            for _ in range(2):  # an upstream 4xx (context too long): never cached
                too_long = a.post("/v1/chat/completions", json={**greedy, "max_tokens": 10**6})
                assert too_long.status_code == 400
            assert upstream.stats.requests == 5
            for seed in (1, 2):  # two more entries push the first one out (max_entries 2)
                a.post("/v1/chat/completions", json={**CHAT, "seed": seed})
            evicted = b.post("/v1/chat/completions", json=greedy)
            assert "x-rankroute-cache" not in evicted.headers and upstream.stats.requests == 8
        assert asyncio.run(_cache_size(redis_url)) == 2


async def _cache_size(url: str) -> int:
    cache = RedisResponseCache(url)
    try:
        return await cache.size()
    finally:
        await cache.close()


def test_redis_cache_entries_lapse_after_their_ttl(redis_url) -> None:
    async def scenario() -> tuple[bool, bool]:
        cache = RedisResponseCache(redis_url, ttl_s=1.0)
        key = uuid.uuid4().hex
        await cache.put(key, b'{"ok": 1}', {"x-rankroute-model": "small"})
        fresh = await cache.get(key) == (b'{"ok": 1}', {"x-rankroute-model": "small"})
        await asyncio.sleep(1.2)
        lapsed = await cache.get(key) is None
        await cache.close()
        return fresh, lapsed

    assert asyncio.run(scenario()) == (True, True)


def test_a_crashed_replicas_holds_lapse_and_the_budget_comes_back(redis_url) -> None:
    async def scenario() -> tuple[bool, float]:
        crashed, survivor = RedisBudgets(redis_url, hold_ttl_s=1.0), RedisBudgets(redis_url, hold_ttl_s=1.0)
        key_id = "key_" + uuid.uuid4().hex
        await crashed.reserve(key_id, 1.0, 0.9)
        await crashed.close()  # never settles: the replica died mid-request
        try:
            await survivor.reserve(key_id, 1.0, 0.5)
            refused = False
        except BudgetExceeded:
            refused = True
        await asyncio.sleep(1.1)
        await survivor.reserve(key_id, 1.0, 0.5)
        reserved = (await survivor.snapshot([key_id]))[key_id][1]
        await survivor.close()
        return refused, reserved

    refused, reserved = asyncio.run(scenario())
    assert refused and reserved == pytest.approx(0.5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    budget=st.floats(0.05, 2.0),
    requests=st.lists(
        st.tuples(st.integers(0, 2), st.floats(0.001, 0.5), st.floats(0.0, 1.0)), min_size=1, max_size=40
    ),
)
def test_concurrent_replicas_never_book_past_a_budget(redis_url, budget, requests) -> None:
    """Any mix of holds and settlements from three replicas at once books at most the budget."""

    async def scenario() -> tuple[float, float, float]:
        replicas = [RedisBudgets(redis_url) for _ in range(3)]
        key_id = "key_" + uuid.uuid4().hex
        booked = 0.0

        async def one(replica: int, worst: float, used: float) -> None:
            nonlocal booked
            try:
                hold = await replicas[replica].reserve(key_id, budget, worst)
            except BudgetExceeded:
                return
            await asyncio.sleep(0)
            replicas[replica].settle(hold, worst * used)
            booked += worst * used

        await asyncio.gather(*(one(*r) for r in requests))
        for replica in replicas:
            await replica.drain()
        spent, reserved = (await replicas[0].snapshot([key_id]))[key_id]
        for replica in replicas:
            await replica.close()
        return spent, reserved, booked

    spent, reserved, booked = asyncio.run(scenario())
    assert spent <= budget + 1e-9 and reserved == pytest.approx(0, abs=1e-12)
    assert spent == pytest.approx(booked, abs=1e-9)


def test_an_unreachable_redis_refuses_budgeted_keys_with_503_and_cache_misses(
    mock_upstream, tmp_path
) -> None:
    """Budgets and revocations cannot be checked: fail closed with a clear 503; the cache just misses."""
    from gateway_harness import free_port

    upstream = mock_upstream()
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    config = _config(upstream.url, tmp_path / "ledger.sqlite", dead, cache={"enabled": True})
    config["keys"] = {"required": False}
    with run_gateway(config) as gw:
        created = _new_key(gw, budget_usd=5.0)
        with gw.client(created["key"]) as keyed, gw.client() as anonymous:
            refused = keyed.post("/v1/chat/completions", json=CHAT)
            served = [
                anonymous.post("/v1/chat/completions", json={**CHAT, "temperature": 0}) for _ in range(2)
            ]
            with gw.admin() as admin:
                keys_page = admin.get("/admin/keys")
    error = refused.json()["error"]
    assert (
        refused.status_code == 503
        and error["code"] == "shared_state_unavailable"
        and "Redis" in error["message"]
    )
    assert [r.status_code for r in served] == [200, 200] and upstream.stats.requests == 2
    assert keys_page.status_code == 503
