"""Scoring runs off the event loop, and batched store writes still land by time, on exit and before a kill."""

from __future__ import annotations

import io
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from eval_arith_task import ArithInstance, ArithScore, ArithTask, sum_answerer
from eval_openai_server import ServerState, serve
from rich.console import Console
from test_cli_kill_resume import rankroute_eval

from rankroute.data import OutcomeStore
from rankroute.evaluate import EvalConfig, run_eval
from rankroute.evaluate import runner as runner_module

pytestmark = pytest.mark.network


class SlowFirstScore(ArithTask):
    """Arith whose first answer takes long to score (as a code task's sandboxed tests do).

    That scorer blocks until the server has been asked every prompt (or `wait_s` passes), so it is
    released only if the run keeps sending requests while it scores.
    """

    def __init__(self, state: ServerState, total: int, wait_s: float) -> None:
        super().__init__()
        self.state, self.total, self.wait_s = state, total, wait_s
        self.slow_prompt: str | None = None
        self.released_by_requests: bool | None = None
        self.scoring_threads: set[str] = set()
        self.lock = threading.Lock()

    def score(self, instance: ArithInstance, output: str) -> ArithScore:
        with self.lock:
            self.scoring_threads.add(threading.current_thread().name)
            slow = self.slow_prompt is None
            if slow:
                self.slow_prompt = instance.prompt.prompt_id
        if slow:
            deadline = time.monotonic() + self.wait_s
            while self.state.requests < self.total and time.monotonic() < deadline:
                time.sleep(0.01)
            self.released_by_requests = self.state.requests >= self.total
        return super().score(instance, output)


def test_a_slow_score_does_not_stop_other_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    total = 24
    state = ServerState(answer=sum_answerer)
    task = SlowFirstScore(state, total, wait_s=20.0)
    monkeypatch.setattr(runner_module, "resolve_task", lambda spec: task)
    with serve(state) as url:
        config = EvalConfig.model_validate(
            {
                "models": [{"name": "m", "base_url": url, "stream": False}],
                "tasks": [{"name": "arith", "limit": total}],
                "store": str(tmp_path / "s.duckdb"),
                "concurrency": 2,
            }
        )
        with OutcomeStore(config.store) as store:
            report = run_eval(config, store=store)
            stored = store.read_outcomes()
    # scoring ran on the scoring threads, and the other 23 prompts were asked while the first was scored
    assert task.released_by_requests is True
    assert task.scoring_threads and all(n.startswith("rankroute-score") for n in task.scoring_threads)
    assert report.completed == total and len(stored) == total and state.requests == total
    index = stored["prompt_id"].str.removeprefix("arith-").astype(int)
    assert (stored["quality"] == (index % 2 == 0).astype(float)).all()


def test_scoring_errors_are_reported_per_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenOnOdd(ArithTask):
        def score(self, instance: ArithInstance, output: str) -> ArithScore:
            if int(instance.prompt.prompt_id.removeprefix("arith-")) % 2:
                raise ValueError("cannot parse this answer")
            return super().score(instance, output)

    monkeypatch.setattr(runner_module, "resolve_task", lambda spec: BrokenOnOdd())
    with serve(ServerState(answer=sum_answerer)) as url:
        config = EvalConfig.model_validate(
            {
                "models": [{"name": "m", "base_url": url, "stream": False}],
                "tasks": [{"name": "arith", "limit": 10}],
                "store": str(tmp_path / "s.duckdb"),
            }
        )
        with OutcomeStore(config.store) as store:
            report = run_eval(config, store=store)
            stored = store.read_outcomes()
    # a scorer failing in its thread is this prompt's problem, reported; the run goes on
    failed = sorted(i.prompt_id or "" for i in report.issues)
    assert report.completed == len(stored) == 5 and len(failed) == 5
    assert all(int(p.removeprefix("arith-")) % 2 == 1 for p in failed)
    assert all("cannot parse this answer" in i.problem for i in report.issues)


def write_config(path: Path, **fields: Any) -> Path:
    path.write_text(json.dumps(fields))
    return path


def test_time_based_flush_stores_outcomes_long_before_the_batch_fills(tmp_path: Path) -> None:
    """With a batch far larger than the run, only the time-based flush can have stored what a kill keeps."""
    total, flush_interval_s = 400, 0.2
    state = ServerState(answer=sum_answerer, delay_s=0.02)
    store_path = tmp_path / "store.duckdb"
    with serve(state) as url:
        config = write_config(
            tmp_path / "eval.yaml",
            run_name="batched",
            models=[{"name": "m", "base_url": url, "stream": False}],
            tasks=[{"name": "arith", "limit": total}],
            store=str(store_path),
            concurrency=2,
            batch_size=10_000,
            flush_interval_s=flush_interval_s,
        )
        process = rankroute_eval("--config", str(config))
        deadline = time.monotonic() + 120
        while state.requests < 30 and process.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.01)
        # keep asking for a while so several flush intervals pass, then kill mid-run
        asked_at_30 = time.monotonic()
        while time.monotonic() - asked_at_30 < 10 * flush_interval_s and process.poll() is None:
            time.sleep(0.01)
        asked_before_kill = state.requests
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed: raise total"
    with OutcomeStore(store_path) as store:
        kept = store.read_outcomes()
    # at least the first 30 answers were older than many flush intervals at the kill: they are stored
    assert 30 <= len(kept) <= asked_before_kill < total
    assert kept["prompt_id"].nunique() == len(kept)


def test_buffered_outcomes_are_stored_while_no_answer_arrives(tmp_path: Path) -> None:
    """Two answers come at once, the third hangs: the timer, not a later answer, must store the two."""
    state = ServerState(answer=sum_answerer, faults=["ok", "ok", "hang"], hang_s=4.0)
    store_path = tmp_path / "store.duckdb"
    with serve(state) as url:
        config = write_config(
            tmp_path / "eval.yaml",
            run_name="paused",
            models=[{"name": "m", "base_url": url, "stream": False, "timeout_s": 30}],
            tasks=[{"name": "arith", "limit": 3}],
            store=str(store_path),
            concurrency=3,
            batch_size=100,
            flush_interval_s=0.2,
        )
        process = rankroute_eval("--config", str(config))
        deadline = time.monotonic() + 120
        while state.requests < 3 and process.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.01)
        time.sleep(2.5)  # many flush intervals, while the third request hangs
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    with OutcomeStore(store_path) as store:
        kept = store.read_outcomes()
    assert len(kept) == 2 and kept["prompt_id"].nunique() == 2


def test_progress_bars_end_at_the_total_and_count_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bar updates are throttled and come from several threads; the bars still end exact."""
    total = 60
    monkeypatch.setattr(runner_module, "resolve_task", lambda spec: ArithTask())
    state = ServerState(answer=sum_answerer, faults=["ok", "500", "ok", "500", "500"])
    with serve(state) as url:
        config = EvalConfig.model_validate(
            {
                "models": [{"name": "m", "base_url": url, "stream": False, "max_retries": 0}],
                "tasks": [{"name": "arith", "limit": total}],
                "store": str(tmp_path / "s.duckdb"),
                "concurrency": 8,
            }
        )
        shown = io.StringIO()
        with OutcomeStore(config.store) as store:
            report = run_eval(config, store=store, console=Console(file=shown, width=200))
    assert report.completed == total - 3 and report.failed == 3
    bars = [line for line in shown.getvalue().splitlines() if line.startswith(("all models", "m "))]
    assert len(bars) == 2 and all(f"{total}/{total}" in bar and "failed 3" in bar for bar in bars)
