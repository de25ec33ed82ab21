"""The runner against a real OpenAI-compatible server on 127.0.0.1: storage, cost, resume, faults."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from benchmarks.data_import import scratch_database
from eval_openai_server import ServerState, serve

from rankroute.data import OutcomeStore
from rankroute.evaluate import EvalConfig, run_eval, summarize

pytestmark = pytest.mark.network


def config(
    url: str, store: Path | str, *, limit: int = 12, models: list[dict[str, Any]] | None = None, **extra: Any
) -> EvalConfig:
    models = models or [
        {
            "name": "priced",
            "base_url": url,
            "input_price_per_m": 1.0,
            "output_price_per_m": 4.0,
            "max_retries": 3,
            "backoff_base_s": 0.01,
            "timeout_s": 2.0,
        }
    ]
    return EvalConfig.model_validate(
        {
            "models": models,
            "tasks": [{"name": "arith", "limit": limit}],
            "store": str(store),
            "concurrency": 4,
            "batch_size": 5,
            **extra,
        }
    )


def test_outcomes_stored_with_tokens_latency_and_token_priced_cost(
    arith: None, server: str, tmp_path: Path, server_state: ServerState
) -> None:
    cfg = config(server, tmp_path / "s.duckdb")
    with OutcomeStore(cfg.store) as store:
        report = run_eval(cfg, store=store)
        frame = store.read_outcomes(with_response=True)
        cards = {c.name: c for c in store.read_models()}
        runs = store.counts()["runs"]
    assert report.completed == 12 and not report.issues
    assert len(frame) == 12 and server_state.requests == 12
    assert frame["run_id"].eq(report.run_id).all() and frame["config_key"].nunique() == 1
    # the server answers right exactly when the first addend is even (3i + 2 even <=> i even)
    index = frame["prompt_id"].str.removeprefix("arith-").astype(int)
    assert (frame["quality"] == (index % 2 == 0).astype(float)).all()
    expected_cost = (frame["input_tokens"] * 1.0 + frame["output_tokens"] * 4.0) / 1e6
    assert frame["cost_usd"].to_numpy() == pytest.approx(expected_cost.to_numpy())
    assert (frame["latency_ms"] > 0).all() and frame["ttft_ms"].notna().all()
    assert frame["response"].str.startswith("The answer is").all()
    extra = json.loads(frame["extra"].iloc[0])
    assert extra["tokens_counted_by"] == "usage" and "tokens_per_s" in extra
    assert cards["priced"].hosted and cards["priced"].output_price_per_m == 4.0 and runs == 1


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_rerun_resumes_and_asks_nothing_twice(
    arith: None, server: str, tmp_path: Path, server_state: ServerState, engine: str, request: Any
) -> None:
    with ExitStack() as stack:
        location = str(tmp_path / "s.duckdb")
        if engine == "postgres":  # the shared store: the config names it by URL
            location = stack.enter_context(scratch_database(request.getfixturevalue("postgres_dsn")))
        store = stack.enter_context(OutcomeStore(location))
        first = run_eval(config(server, location, limit=8), store=store)
        again = run_eval(config(server, location, limit=8), store=store)
        more = run_eval(config(server, location, limit=14), store=store)
        total = store.counts()["outcomes"]
        summary = summarize(store, more.config_keys)
    assert (first.completed, again.completed, again.already_stored) == (8, 0, 8)
    assert (more.completed, more.already_stored) == (6, 8)
    assert server_state.requests == 14 and total == 14
    assert summary["n"].tolist() == [14]


def test_decoding_and_backend_changes_get_their_own_config_key(
    arith: None, server: str, tmp_path: Path
) -> None:
    with OutcomeStore(tmp_path / "s.duckdb") as store:
        a = run_eval(config(server, store.path, limit=4), store=store)
        b = run_eval(
            config(server, store.path, limit=4, decoding={"temperature": 0.7, "max_tokens": 32}), store=store
        )
        frame = store.read_outcomes()
    assert b.completed == 4 and a.config_keys != b.config_keys
    assert len(frame) == 8 and frame["config_key"].nunique() == 2


def test_injected_429_5xx_timeout_and_dropped_stream_are_retried(arith: None, tmp_path: Path) -> None:
    from eval_arith_task import sum_answerer

    state = ServerState(
        answer=sum_answerer, faults=["429", "500", "hang", "503", "drop", "ok", "500"], hang_s=5
    )
    with serve(state) as url, OutcomeStore(tmp_path / "s.duckdb") as store:
        cfg = config(url, store.path, limit=6)
        report = run_eval(cfg, store=store)
        stored = store.counts()["outcomes"]
    assert not report.issues, report.issue_examples()
    assert report.completed == 6 and stored == 6
    assert state.requests == 6 + 6  # six injected failures, each retried once more


def test_failed_calls_are_reported_and_the_run_goes_on(
    arith: None, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = ServerState(faults=["500"] * 1000)
    monkeypatch.delenv("RANKROUTE_TEST_MISSING_KEY", raising=False)
    with serve(broken) as bad_url, OutcomeStore(tmp_path / "s.duckdb") as store:
        models = [
            {"name": "good", "base_url": server, "usd_per_hour": 3.6},
            {"name": "always-500", "base_url": bad_url, "max_retries": 1, "backoff_base_s": 0.01},
            {"name": "no-key", "base_url": server, "api_key_env": "RANKROUTE_TEST_MISSING_KEY"},
        ]
        report = run_eval(config(server, store.path, limit=5, models=models), store=store)
        frame = store.read_outcomes()
    assert set(frame["model"]) == {"good"} and len(frame) == 5
    # self-served price: 3.6 USD/hour is 1e-6 USD per millisecond of measured compute
    assert frame["cost_usd"].to_numpy() == pytest.approx(frame["latency_ms"].to_numpy() * 1e-6, rel=0.05)
    problems = [str(i) for i in report.issues]
    assert report.failed >= 5 and any("always-500" in p and "500" in p for p in problems)
    assert any("RANKROUTE_TEST_MISSING_KEY" in p for p in problems)
    assert not report.ran_nothing


def test_garbage_answers_are_reported_not_stored(arith: None, tmp_path: Path) -> None:
    state = ServerState(faults=["garbage"] * 100)
    with serve(state) as url, OutcomeStore(tmp_path / "s.duckdb") as store:
        models = [{"name": "garbage", "base_url": url, "max_retries": 0, "stream": False}]
        report = run_eval(config(url, store.path, limit=3, models=models), store=store)
        assert store.counts()["outcomes"] == 0
    assert report.ran_nothing and report.failed == 3
    assert "garbage" in report.issue_examples()[0]


def test_unknown_task_is_reported_and_the_known_one_runs(arith: None, server: str, tmp_path: Path) -> None:
    cfg = config(server, tmp_path / "s.duckdb", limit=3)
    cfg = cfg.model_copy(
        update={"tasks": [*cfg.tasks, cfg.tasks[0].model_copy(update={"name": "no_such_task"})]}
    )
    report = run_eval(cfg)
    assert report.completed == 3
    assert any(i.stage == "task" and "no_such_task" in str(i) for i in report.issues)
