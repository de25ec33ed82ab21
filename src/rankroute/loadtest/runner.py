"""Drive a load test: closed loop (N users back to back) or open loop (Poisson arrivals), one shared
httpx.AsyncClient with explicit timeouts, warm-up requests sent but not measured."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel, Field

from rankroute.data.errors import DataError
from rankroute.loadtest.client import RequestResult, request_body, timed_request
from rankroute.loadtest.config import LoadTestConfig
from rankroute.loadtest.resources import ResourceSampler
from rankroute.loadtest.summary import LoadSummary, summarize

Progress = Callable[[RequestResult], None]


class LoadTestRun(BaseModel):
    """One load level: its settings, summary and every request (warm-up ones flagged)."""

    run_id: str = Field(default_factory=lambda: "loadtest-" + uuid.uuid4().hex[:12])
    started_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    config: LoadTestConfig
    summary: LoadSummary
    results: list[dict[str, Any]]


def make_client(config: LoadTestConfig) -> httpx.AsyncClient:
    """The run's one client: a connection per concurrent request, explicit connect/read timeouts."""
    connections = config.concurrency if config.mode == "closed" else config.max_in_flight
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    return httpx.AsyncClient(
        timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        headers=headers,
    )


class _Schedule:
    """Hands out request numbers and prompts, says which are warm-up, and when to stop issuing."""

    def __init__(self, config: LoadTestConfig, prompts: Sequence[str], origin: float) -> None:
        if not prompts:
            raise DataError("a load test needs at least one prompt")
        self.config = config
        self.prompts = prompts
        self.origin = origin
        self.numbers = itertools.count()
        self.measured = 0
        self.deadline = (
            origin + config.warmup_s + config.duration_s if config.duration_s is not None else float("inf")
        )

    def next(self) -> tuple[int, str, bool] | None:
        now = time.perf_counter()
        if now >= self.deadline:
            return None
        if self.config.requests is not None and self.measured >= self.config.requests:
            return None
        number = next(self.numbers)
        warmup = number < self.config.warmup_requests or now - self.origin < self.config.warmup_s
        if not warmup:
            self.measured += 1
        return number, self.prompts[number % len(self.prompts)], warmup


async def arun_load_test(
    config: LoadTestConfig,
    prompts: Sequence[str],
    *,
    progress: Progress | None = None,
    client: httpx.AsyncClient | None = None,
) -> LoadTestRun:
    """Run one load level and summarise it (async; `run_load_test` is the sync face)."""
    owned = client is None
    http = client or make_client(config)
    sampler: AbstractContextManager[Any] = (
        ResourceSampler(config.server_pid, config.sample_interval_s) if config.server_pid else nullcontext()
    )
    results: list[RequestResult] = []
    try:
        with sampler as sampling:
            origin = time.perf_counter()
            schedule = _Schedule(config, prompts, origin)

            async def send(number: int, prompt: str, warmup: bool, due: float | None = None) -> None:
                body = request_body(
                    config.model,
                    prompt,
                    endpoint=config.endpoint,
                    max_tokens=config.max_tokens,
                    temperature=config.temperature,
                    ignore_eos=config.ignore_eos,
                )
                result = await timed_request(http, config.url, body, index=number, origin=origin)
                result.warmup = warmup
                if due is not None:
                    result.schedule_lag_ms = max(0.0, (origin + result.start_s - due) * 1000.0)
                results.append(result)
                if progress is not None:
                    progress(result)

            if config.mode == "closed":
                await _closed_loop(config, schedule, send)
            else:
                await _open_loop(config, schedule, send, results, origin, progress)
    finally:
        if owned:
            await http.aclose()
    results.sort(key=lambda result: result.index)
    summary = summarize(results, config.slo)
    summary.concurrency = config.concurrency if config.mode == "closed" else None
    summary.rate = config.rate if config.mode == "open" else None
    if isinstance(sampling, ResourceSampler):
        summary.resources = sampling.summary()
    return LoadTestRun(config=config, summary=summary, results=[result.to_json() for result in results])


async def _closed_loop(
    config: LoadTestConfig, schedule: _Schedule, send: Callable[[int, str, bool], Any]
) -> None:
    async def user() -> None:
        while (ticket := schedule.next()) is not None:
            await send(*ticket)

    await asyncio.gather(*(user() for _ in range(config.concurrency)))


async def _open_loop(
    config: LoadTestConfig,
    schedule: _Schedule,
    send: Callable[[int, str, bool, float], Any],
    results: list[RequestResult],
    origin: float,
    progress: Progress | None,
) -> None:
    """Poisson arrivals on an absolute timetable: a slow server never slows the arrivals down."""
    assert config.rate is not None
    rng = np.random.default_rng(config.seed)
    in_flight: set[asyncio.Task[Any]] = set()
    due = time.perf_counter()
    while True:
        due += float(rng.exponential(1.0 / config.rate))
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        ticket = schedule.next()
        if ticket is None:
            break
        if len(in_flight) >= config.max_in_flight:  # the client's own cap, reported as an error kind
            now = time.perf_counter() - origin
            dropped = RequestResult(index=ticket[0], start_s=now, end_s=now, warmup=ticket[2])
            dropped.error_kind, dropped.error = (
                "overload",
                f"{config.max_in_flight} requests already in flight",
            )
            results.append(dropped)
            if progress is not None:
                progress(dropped)
            continue
        task = asyncio.create_task(send(*ticket, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*in_flight)


def run_load_test(
    config: LoadTestConfig, prompts: Sequence[str], *, progress: Progress | None = None
) -> LoadTestRun:
    """Run one load level on a fresh event loop."""
    return asyncio.run(arun_load_test(config, prompts, progress=progress))
