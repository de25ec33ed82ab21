# ruff: noqa: F811  (pytest fixtures imported from gateway_harness are parameters here)
"""Cache, feedback into the outcome store, A/B splits, shadow routers and guardrails."""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from typing import Any

import pytest
from benchmarks.data_import import scratch_database
from gateway_harness import gateway_config, mock_upstream, start_gateway  # noqa: F401 (fixtures)
from hypothesis import given
from hypothesis import strategies as st

from rankroute.data import OutcomeStore
from rankroute.route.baselines import SingleModelRouter
from rankroute.serve.guardrails import redact_text

pytestmark = pytest.mark.network


def _chat(http: Any, model: str, text: str, **extra: Any) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return http.post("/v1/chat/completions", json=body)


def test_cache_serves_deterministic_requests_only(mock_upstream, start_gateway, gateway_config) -> None:
    upstream = mock_upstream()
    config = gateway_config(
        [{"name": "small", "base_url": upstream.url}], cache={"enabled": True, "ttl_s": 60}
    )
    with start_gateway(config) as gw, gw.client() as http:
        first = _chat(http, "small", "same question", temperature=0)
        second = _chat(http, "small", "same question", temperature=0)
        assert "x-rankroute-cache" not in first.headers and second.headers["x-rankroute-cache"] == "hit"
        assert first.json() == second.json()
        _chat(http, "small", "same question", temperature=0.7)
        _chat(http, "small", "same question", temperature=0.7)
        _chat(http, "small", "same question", seed=3)
        _chat(http, "small", "same question", seed=3)
        assert "rankroute_cache_hits_total 2.0" in http.get("/metrics").text
    assert upstream.stats.requests == 4  # temperature 0 once, 0.7 twice (never cached), seed 3 once


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_feedback_becomes_outcomes_and_battles(
    mock_upstream, start_gateway, gateway_config, tmp_path, engine: str, request: pytest.FixtureRequest
) -> None:
    with ExitStack() as stack:
        store_path = str(tmp_path / "outcomes.duckdb")
        if engine == "postgres":
            store_path = stack.enter_context(scratch_database(request.getfixturevalue("postgres_dsn")))
        feedback_round_trip(mock_upstream, start_gateway, gateway_config, store_path)


def feedback_round_trip(mock_upstream, start_gateway, gateway_config, store_path: str) -> None:
    a, b = mock_upstream(name="a"), mock_upstream(name="b")
    config = gateway_config(
        [{"name": "model-a", "base_url": a.url}, {"name": "model-b", "base_url": b.url}],
        storage={"outcome_store": store_path},
    )
    with start_gateway(config) as gw, gw.client() as http:
        first = _chat(http, "model-a", "Name a prime number.").json()["id"]
        second = _chat(http, "model-b", "Name a prime number.").json()["id"]
        rated = http.post("/v1/feedback", json={"response_id": first, "rating": 0.9})
        assert rated.status_code == 200 and rated.json()["stored"] == "outcome"
        pref = http.post(
            "/v1/feedback", json={"response_id": second, "other_response_id": first, "winner": "this"}
        )
        assert pref.status_code == 200 and pref.json()["stored"] == "battle"
        assert http.post("/v1/feedback", json={"response_id": "nope", "rating": 1}).status_code == 404
        assert http.post("/v1/feedback", json={"response_id": first, "rating": 3}).status_code == 400
        assert http.post("/v1/feedback", json={"response_id": first}).status_code == 400
        changed = http.post("/v1/feedback", json={"response_id": first, "rating": 0.1})
        assert changed.status_code == 409  # outcomes are immutable: a second, different rating is refused
    with OutcomeStore(store_path, read_only=True) as store:
        outcomes = store.read_outcomes()
        battles = store.read_battles()
        prompts = store.read_prompts()
    assert outcomes[["model", "quality", "metric"]].values.tolist() == [["model-a", 0.9, "user_rating"]]
    assert battles[["model_a", "model_b", "winner"]].values.tolist() == [["model-b", "model-a", "model_a"]]
    assert prompts.text.tolist() == ["Name a prime number."]


def test_feedback_is_off_without_an_outcome_store(mock_upstream, start_gateway, gateway_config) -> None:
    with (
        start_gateway(gateway_config([{"name": "small", "base_url": mock_upstream().url}])) as gw,
        gw.client() as http,
    ):
        rid = _chat(http, "small", "x").json()["id"]
        off = http.post("/v1/feedback", json={"response_id": rid, "rating": 1})
        assert off.status_code == 409 and off.json()["error"]["code"] == "feedback_disabled"


def test_ab_split_is_sticky_per_user(mock_upstream, start_gateway, gateway_config) -> None:
    a, b = mock_upstream(name="a"), mock_upstream(name="b")
    config = gateway_config(
        [{"name": "model-a", "base_url": a.url}, {"name": "model-b", "base_url": b.url}],
        ab_tests=[{"name": "experiment", "arms": {"model-a": 0.5, "model-b": 0.5}, "sticky_by": "user"}],
    )
    with start_gateway(config) as gw, gw.client() as http:
        arms = {}
        for user in range(40):
            seen = {
                _chat(http, "experiment", "q", user=f"user-{user}").headers["x-rankroute-ab-arm"]
                for _ in range(3)
            }
            assert len(seen) == 1  # sticky
            arms[user] = seen.pop()
    split = Counter(arms.values())
    assert set(split) == {"model-a", "model-b"} and min(split.values()) >= 10


def test_shadow_router_decides_without_serving(
    mock_upstream, start_gateway, gateway_config, tmp_path
) -> None:
    import pandas as pd

    from rankroute.data.matrix import OutcomeMatrix
    from rankroute.route.persist import save_router

    prompts = pd.DataFrame({"prompt_id": ["p1", "p2"], "text": ["a", "b"], "dataset": ["d", "d"]})
    outcomes = pd.DataFrame(
        {
            "prompt_id": ["p1", "p1", "p2", "p2"],
            "model": ["cheap", "strong"] * 2,
            "quality": [0.2, 0.9, 0.3, 0.8],
            "cost_usd": [0.001, 0.01, 0.001, 0.01],
            "metric": ["q"] * 4,
        }
    )
    matrix = OutcomeMatrix.from_frames(prompts, outcomes)
    live = save_router(SingleModelRouter("cheap").fit(matrix), tmp_path / "live.router")
    candidate = save_router(SingleModelRouter("strong").fit(matrix), tmp_path / "candidate.router")
    cheap, strong = mock_upstream(name="cheap"), mock_upstream(name="strong")
    config = gateway_config(
        [{"name": "cheap", "base_url": cheap.url}, {"name": "strong", "base_url": strong.url}],
        routers=[{"name": "rankroute/auto", "path": str(live), "shadow": str(candidate)}],
    )
    with start_gateway(config) as gw, gw.client() as http:
        for i in range(5):
            assert _chat(http, "rankroute/auto", f"q{i}").headers["x-rankroute-model"] == "cheap"
        import time

        time.sleep(0.3)
        with gw.admin() as admin:
            shadow = admin.get("/admin/shadow").json()
    assert strong.stats.requests == 0 and cheap.stats.requests == 5
    assert [(r["served_model"], r["shadow_model"]) for r in shadow["data"]] == [("cheap", "strong")] * 5
    assert shadow["agreement"] == 0.0


def test_guardrails_limit_input_and_redact_pii(mock_upstream, start_gateway, gateway_config) -> None:
    upstream = mock_upstream()
    config = gateway_config(
        [{"name": "small", "base_url": upstream.url}], guardrails={"max_input_chars": 200, "redact_pii": True}
    )
    with start_gateway(config) as gw, gw.client() as http:
        too_long = _chat(http, "small", "x" * 201)
        assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "guardrail_violation"
        ok = _chat(
            http, "small", "Mail jane.doe@example.com or call +1 415-555-0132; card 4111 1111 1111 1111."
        )
        assert ok.status_code == 200
    sent = upstream.stats.last_body["messages"][0]["content"]
    assert sent == "Mail [EMAIL] or call [PHONE]; card [CARD]."
    assert upstream.stats.requests == 1


def test_custom_hooks_run_before_and_after(mock_upstream, start_gateway, gateway_config) -> None:
    from rankroute.serve.guardrails import GuardrailViolation

    def no_secrets(body: dict[str, Any]) -> dict[str, Any]:
        if "password" in str(body.get("messages")):
            raise GuardrailViolation("requests may not contain passwords")
        return body

    def stamp(body: dict[str, Any]) -> dict[str, Any]:
        body["checked_by"] = "after-hook"
        return body

    upstream = mock_upstream()
    with (
        start_gateway(
            gateway_config([{"name": "small", "base_url": upstream.url}]),
            hooks_before=[no_secrets],
            hooks_after=[stamp],
        ) as gw,
        gw.client() as http,
    ):
        assert _chat(http, "small", "my password is hunter2").status_code == 400
        assert _chat(http, "small", "hello").json()["checked_by"] == "after-hook"
    assert upstream.stats.requests == 1


@given(st.emails())
def test_redaction_removes_any_email(email: str) -> None:
    assert email not in redact_text(f"contact {email} today")


def test_redaction_keeps_ordinary_numbers() -> None:
    assert redact_text("order 12345 shipped in 2024, 3 items") == "order 12345 shipped in 2024, 3 items"
    assert "[CARD]" not in redact_text("card 4111 1111 1111 1112")  # fails the Luhn check
