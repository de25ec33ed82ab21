"""Sweeps: closed loop at 1, 2, 4, ... users until throughput stops growing (the knee of throughput vs
latency), and open loop at rising Poisson arrival rates until goodput under the SLO falls off (the knee:
the highest rate the server sustains within the SLO)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from rankroute.data.errors import DataError
from rankroute.loadtest.config import LoadTestConfig
from rankroute.loadtest.runner import LoadTestRun, Progress, arun_load_test, make_client


class SweepResult(BaseModel):
    """Every level's run, and the knee: the level with the most throughput per unit of latency."""

    levels: list[LoadTestRun]
    knee_concurrency: int | None
    saturated: bool


def knee_index(throughput: Sequence[float], latency: Sequence[float]) -> int | None:
    """Index of the knee: the maximum of Kleinrock's power, throughput / latency.

    Below the knee adding users buys throughput almost for free; past it they mostly queue, raising
    latency faster than throughput. Levels with no throughput or latency are ignored.
    """
    power = [
        t / lat if lat and lat > 0 and t > 0 else -1.0 for t, lat in zip(throughput, latency, strict=True)
    ]
    best = max(range(len(power)), key=power.__getitem__, default=None)
    return best if best is not None and power[best] > 0 else None


def concurrency_levels(max_concurrency: int) -> list[int]:
    """1, 2, 4, ... up to and including `max_concurrency`."""
    levels = [1]
    while levels[-1] * 2 <= max_concurrency:
        levels.append(levels[-1] * 2)
    if levels[-1] != max_concurrency:
        levels.append(max_concurrency)
    return levels


async def _run_levels(
    config: LoadTestConfig,
    prompts: Sequence[str],
    updates: list[dict[str, Any]],
    stop: Callable[[list[LoadTestRun]], bool],
    progress: Progress | None,
    on_level: Callable[[LoadTestRun], None] | None,
) -> tuple[list[LoadTestRun], bool]:
    """One run per config update, in order, over one client sized for the last (widest) level, until
    `stop(levels so far)` says the last level saturated; returns the runs and whether it stopped."""
    levels: list[LoadTestRun] = []
    async with make_client(config.model_copy(update=updates[-1])) as client:
        for update in updates:
            level = config.model_copy(update=update)
            run = await arun_load_test(level, prompts, progress=progress, client=client)
            levels.append(run)
            if on_level is not None:
                on_level(run)
            if stop(levels):
                return levels, True
    return levels, False


async def asweep(
    config: LoadTestConfig,
    prompts: Sequence[str],
    *,
    max_concurrency: int = 64,
    min_gain: float = 0.05,
    max_error_rate: float = 0.2,
    progress: Progress | None = None,
    on_level: Callable[[LoadTestRun], None] | None = None,
) -> SweepResult:
    """Closed-loop runs at doubling concurrency; stops once throughput grows by less than `min_gain`
    (saturation) or more than `max_error_rate` of requests fail. Each level warms up as `config` says."""

    def saturated(levels: list[LoadTestRun]) -> bool:
        summary = levels[-1].summary
        if summary.error_rate > max_error_rate:
            return True
        before = levels[-2].summary.output_tokens_per_s if len(levels) > 1 else 0.0
        return before > 0 and summary.output_tokens_per_s < before * (1 + min_gain)

    updates = [{"mode": "closed", "concurrency": level} for level in concurrency_levels(max_concurrency)]
    levels, stopped = await _run_levels(config, prompts, updates, saturated, progress, on_level)
    index = knee_index(
        [run.summary.output_tokens_per_s for run in levels],
        [run.summary.latency_ms.p50 or 0.0 for run in levels],
    )
    return SweepResult(
        levels=levels,
        knee_concurrency=levels[index].config.concurrency if index is not None else None,
        saturated=stopped,
    )


def sweep(config: LoadTestConfig, prompts: Sequence[str], **options: object) -> SweepResult:
    """Sync face of `asweep`."""
    return asyncio.run(asweep(config, prompts, **options))  # type: ignore[arg-type]


class RateSweepResult(BaseModel):
    """Every offered rate's run, and the knee: the highest rate whose requests still met the SLO (at least
    `min_attainment` of them) while goodput kept growing; None if even the first rate did not."""

    levels: list[LoadTestRun]
    knee_rate: float | None
    saturated: bool


def rate_levels(start_rate: float, max_rate: float, growth: float = 2.0) -> list[float]:
    """start, start x growth, ... up to and including `max_rate` (requests per second)."""
    if start_rate <= 0 or max_rate < start_rate or growth <= 1:
        raise DataError(
            f"bad rate sweep: start {start_rate:g}, max {max_rate:g}, growth {growth:g}",
            hint="need 0 < start rate <= max rate and growth > 1",
        )
    levels = [start_rate]
    while levels[-1] * growth <= max_rate:
        levels.append(levels[-1] * growth)
    if levels[-1] < max_rate:
        levels.append(max_rate)
    return levels


async def arate_sweep(
    config: LoadTestConfig,
    prompts: Sequence[str],
    *,
    start_rate: float = 1.0,
    max_rate: float = 64.0,
    growth: float = 2.0,
    min_attainment: float = 0.9,
    min_gain: float = 0.05,
    max_error_rate: float = 0.2,
    progress: Progress | None = None,
    on_level: Callable[[LoadTestRun], None] | None = None,
) -> RateSweepResult:
    """Open-loop runs at rising arrival rates (`rate_levels`), each bounded as `config` says.

    A rate is sustained when at least `min_attainment` of its requests meet `config.slo`, no more than
    `max_error_rate` fail, and goodput (requests/s within the SLO) grew by at least `min_gain` over the
    rate before. The sweep stops at the first rate that is not (saturated) and reports the last one that
    was. Arrivals follow their own timetable, so past the knee requests queue and the SLO shows it.
    """

    def not_sustained(levels: list[LoadTestRun]) -> bool:
        summary = levels[-1].summary
        grew = len(levels) == 1 or summary.goodput_requests_per_s >= (
            levels[-2].summary.goodput_requests_per_s * (1 + min_gain)
        )
        return summary.slo_attainment < min_attainment or summary.error_rate > max_error_rate or not grew

    updates = [{"mode": "open", "rate": rate} for rate in rate_levels(start_rate, max_rate, growth)]
    levels, stopped = await _run_levels(config, prompts, updates, not_sustained, progress, on_level)
    sustained = levels[:-1] if stopped else levels
    knee = sustained[-1].config.rate if sustained else None
    return RateSweepResult(levels=levels, knee_rate=knee, saturated=stopped)


def rate_sweep(config: LoadTestConfig, prompts: Sequence[str], **options: object) -> RateSweepResult:
    """Sync face of `arate_sweep`."""
    return asyncio.run(arate_sweep(config, prompts, **options))  # type: ignore[arg-type]
