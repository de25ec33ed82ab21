"""Summary of a load test: latency percentiles, throughput, error rates by kind, and goodput under an SLO."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from rankroute.loadtest.client import RequestResult
from rankroute.loadtest.config import SLO

PERCENTILES = (50, 90, 95, 99)


class Distribution(BaseModel):
    """Mean and percentiles of one per-request measure over the successful measured requests."""

    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Distribution:
        data = np.array([value for value in values if value is not None], dtype=float)
        if data.size == 0:
            return cls(count=0, mean=None, p50=None, p90=None, p95=None, p99=None)
        points = np.percentile(data, PERCENTILES)
        return cls(
            count=int(data.size),
            mean=float(data.mean()),
            **{f"p{q}": float(value) for q, value in zip(PERCENTILES, points, strict=True)},
        )


class LoadSummary(BaseModel):
    """One load level. Rates are over the measured window: first measured start to last measured end."""

    requests: int
    succeeded: int
    failed: int
    duration_s: float
    requests_per_s: float
    output_tokens_per_s: float
    input_tokens_per_s: float
    goodput_requests_per_s: float
    slo_attainment: float
    error_rate: float
    errors_by_kind: dict[str, int]
    ttft_ms: Distribution
    itl_ms: Distribution
    latency_ms: Distribution
    request_tokens_per_s: Distribution
    output_tokens: Distribution
    input_tokens: Distribution
    tokens_counted_by: dict[str, int]
    before_send_ms: Distribution | None = None  # the load tester's own time before a request left
    schedule_lag_ms: Distribution | None = None  # open loop: the client's lateness against the timetable
    concurrency: int | None = None
    rate: float | None = None
    resources: dict[str, Any] | None = None


def meets_slo(result: RequestResult, slo: SLO) -> bool:
    """A successful request within every bound the SLO sets."""
    if not result.ok:
        return False
    checks = ((slo.ttft_ms, result.ttft_ms), (slo.itl_ms, result.itl_ms), (slo.latency_ms, result.latency_ms))
    return all(bound is None or (value is not None and value <= bound) for bound, value in checks)


def summarize(results: Sequence[RequestResult], slo: SLO | None = None) -> LoadSummary:
    """Summary of the measured (non-warm-up) requests."""
    slo = slo or SLO()
    measured = [result for result in results if not result.warmup]
    good = [result for result in measured if result.ok]
    duration = max(r.end_s for r in measured) - min(r.start_s for r in measured) if measured else 0.0
    per_s = 1.0 / duration if duration > 0 else 0.0
    errors = Counter(result.error_kind or "unknown" for result in measured if not result.ok)
    within = sum(meets_slo(result, slo) for result in measured)
    return LoadSummary(
        requests=len(measured),
        succeeded=len(good),
        failed=len(measured) - len(good),
        duration_s=duration,
        requests_per_s=len(good) * per_s,
        output_tokens_per_s=sum(r.output_tokens or 0 for r in good) * per_s,
        input_tokens_per_s=sum(r.input_tokens or 0 for r in good) * per_s,
        goodput_requests_per_s=within * per_s,
        slo_attainment=within / len(measured) if measured else 0.0,
        error_rate=(len(measured) - len(good)) / len(measured) if measured else 0.0,
        errors_by_kind=dict(errors),
        ttft_ms=Distribution.of([r.ttft_ms for r in good]),
        itl_ms=Distribution.of([r.itl_ms for r in good]),
        latency_ms=Distribution.of([r.latency_ms for r in good]),
        request_tokens_per_s=Distribution.of([r.tokens_per_s for r in good]),
        output_tokens=Distribution.of([float(r.output_tokens or 0) for r in good]),
        input_tokens=Distribution.of([float(r.input_tokens or 0) for r in good]),
        tokens_counted_by=dict(Counter(r.tokens_counted_by or "unknown" for r in good)),
        before_send_ms=Distribution.of([r.before_send_ms for r in good]),
        schedule_lag_ms=Distribution.of([r.schedule_lag_ms for r in measured]),
    )
