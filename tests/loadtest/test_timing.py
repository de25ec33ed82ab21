"""The load tester measures what a server with scripted timing did: TTFT, ITL, tokens (network: 127.0.0.1)."""

from __future__ import annotations

import os
import statistics

import pytest

from rankroute.backends.tokens import count_tokens
from rankroute.loadtest import LoadTestConfig, Script, ScriptedServer, run_load_test, scripted_server_process

pytestmark = pytest.mark.network

# The server writes the first token TTFT after the request arrived and the next ones ITL apart.
TTFT_MS, ITL_MS, TOKENS = 60.0, 15.0, 8
# The bound is a millisecond. What a quiet machine gives depends on its loopback and scheduler:
# TTFT ~0.6-0.7 ms over the script on the machine of 2026-11-23, ~1.0-1.4 ms on that of 2026-12-02 (the
# same code, and the code of the commit that met 1 ms, measured there alike; the server ~0.2 ms late, the
# rest the request's and the token's trips over loopback, each through Python on both ends; the openai
# SDK +4.2-5.3 ms in the same runs; docs/benchmarks.md, scripted timing). The test holds TTFT and the decode
# span (one such trip) to 2 ms so that it fails on a regression, not on slower hardware; ITL, a difference
# of two arrivals on one connection, keeps 1 ms.
TOLERANCE_MS = 1.0
TRIP_TOLERANCE_MS = 2.0
# When anything else runs beside the test (the rest of the suite keeps a 2-core box's load average near 1,
# CI's shared runners sit at 10+), the client and server wait for a core before reads and writes, a few ms
# each time: TTFT, which holds two such trips per request, gets a margin then, and the decode span (one trip,
# the last chunk) a smaller one. ITL is a difference of two arrivals on one connection and keeps the
# millisecond bound whatever the load. The load is read when the test runs, not when the module is imported
# (a quiet start of the suite once gave the strict bound to a test run under load: 61.04 ms for 60).
QUIET_LOAD = 0.5


def _margins() -> tuple[float, float]:
    """(TTFT margin, decode margin) in ms for the machine's load now."""
    loaded = os.getloadavg()[0] > QUIET_LOAD
    return (15.0, 1.0) if loaded else (0.0, 0.0)


def test_ttft_itl_and_tokens_match_the_script() -> None:
    ttft_margin_ms, decode_margin_ms = _margins()
    script = Script(ttft_s=TTFT_MS / 1000, itl_s=ITL_MS / 1000, tokens=TOKENS, prompt_tokens=7)
    with scripted_server_process(script) as url:
        config = LoadTestConfig(base_url=url, concurrency=2, requests=32, warmup_requests=2, max_tokens=64)
        run = run_load_test(config, ["hello there"])
    measured = [r for r in run.results if not r["warmup"]]
    assert len(measured) == 32 and all(r["ok"] for r in measured)
    assert {r["output_tokens"] for r in measured} == {TOKENS}
    assert {r["input_tokens"] for r in measured} == {7}
    assert {r["tokens_counted_by"] for r in measured} == {"usage"}
    ttft = [r["ttft_ms"] for r in measured]
    itl = [r["itl_ms"] for r in measured]
    decode = [r["latency_ms"] - r["ttft_ms"] for r in measured]
    # what the server actually did, by its own clock from the request's arrival
    server_first = [r["server_timings"]["first_token_ms"] for r in measured]
    # a token is seen after it was sent, and sent no earlier than the script says
    assert all(seen > sent >= TTFT_MS for seen, sent in zip(ttft, server_first, strict=True))
    assert statistics.median(ttft) - TTFT_MS <= TRIP_TOLERANCE_MS + ttft_margin_ms
    # the load tester's own error: its TTFT minus the server's, i.e. the request's and the token's trips
    own_error = [seen - sent for seen, sent in zip(ttft, server_first, strict=True)]
    assert statistics.median(own_error) <= TRIP_TOLERANCE_MS + ttft_margin_ms
    assert abs(statistics.median(itl) - ITL_MS) <= TOLERANCE_MS
    assert abs(statistics.median(decode) - (TOKENS - 1) * ITL_MS) <= TRIP_TOLERANCE_MS + decode_margin_ms
    # the load tester's own time before a request left (building it) is kept apart, not hidden
    assert all(r["before_send_ms"] is not None and r["before_send_ms"] > 0 for r in measured)
    summary = run.summary
    assert summary.requests == 32 and summary.succeeded == 32
    assert summary.output_tokens.mean == TOKENS
    assert summary.itl_ms.p50 == pytest.approx(statistics.median(itl))
    assert summary.before_send_ms is not None and summary.before_send_ms.count == 32
    # one warm-up request per user was sent but is not in the summary
    assert len(run.results) == 34 and sum(r["warmup"] for r in run.results) == 2


def test_tokens_come_from_usage_not_stream_chunks() -> None:
    """Four tokens per chunk: the count is the server's usage (8), not the chunks (2)."""
    with ScriptedServer(Script(ttft_s=0.0, itl_s=0.0, tokens=8, tokens_per_chunk=4)) as server:
        run = run_load_test(LoadTestConfig(base_url=server.base_url, requests=3), ["hi"])
    assert [(r["output_tokens"], r["chunks"]) for r in run.results] == [(8, 2)] * 3


def test_without_usage_tokens_are_counted_with_a_tokenizer() -> None:
    with ScriptedServer(Script(ttft_s=0.0, itl_s=0.0, tokens=8, include_usage=False)) as server:
        run = run_load_test(
            LoadTestConfig(base_url=server.base_url, model="gpt-4o", requests=2), ["hi there"]
        )
    result = run.results[0]
    assert result["tokens_counted_by"] == "tokenizer"
    assert result["output_tokens"] == count_tokens("tok" * 8, "gpt-4o")
    assert result["input_tokens"] == count_tokens("hi there", "gpt-4o")


def test_completions_endpoint_is_timed_too() -> None:
    with ScriptedServer(Script(ttft_s=0.0, itl_s=0.0, tokens=5)) as server:
        config = LoadTestConfig(base_url=server.base_url, endpoint="completions", requests=2)
        run = run_load_test(config, ["1 2 3"])
    assert all(r["ok"] and r["output_tokens"] == 5 for r in run.results)
