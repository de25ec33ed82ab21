# ruff: noqa: F811  (pytest fixtures imported from gateway_harness are parameters here)
"""Rate limits shared across gateway replicas through a real Redis server started by the test."""

from __future__ import annotations

import pytest
from gateway_harness import gateway_config, mock_upstream, redis_url, run_gateway  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_two_replicas_share_one_rate_limit(redis_url, mock_upstream, gateway_config, tmp_path) -> None:
    """A key limited to 4 requests a minute gets 4 in all, however its requests spread over two replicas."""
    upstream = mock_upstream()
    ledger = str(tmp_path / "shared.sqlite")
    config = {
        "deployments": [{"name": "small", "base_url": upstream.url}],
        "keys": {"required": True},
        "storage": {"ledger": ledger, "redis_url": redis_url},
    }
    body = {"model": "small", "messages": [{"role": "user", "content": "x"}]}
    with run_gateway(config) as first:
        with first.admin() as admin:
            secret = admin.post("/admin/keys", json={"name": "shared", "rpm": 4}).json()["key"]
        with run_gateway(config) as second, first.client(secret) as a, second.client(secret) as b:
            statuses = [
                (a if i % 2 else b).post("/v1/chat/completions", json=body).status_code for i in range(8)
            ]
    assert statuses.count(200) == 4 and statuses.count(429) == 4
    assert upstream.stats.requests == 4
