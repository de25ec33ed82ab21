"""Open-loop rate sweep: Poisson arrivals at rising rates until goodput under the SLO falls off
(network: 127.0.0.1)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from rankroute.cli import app, main
from rankroute.data import OutcomeStore
from rankroute.data.errors import DataError
from rankroute.loadtest import (
    SLO,
    LoadTestConfig,
    Script,
    ScriptedServer,
    rate_levels,
    rate_sweep,
    read_loadtests,
)

runner = CliRunner()

# One slot, ~20 ms per answer (15 ms to the first token, 5 ms to the second): ~50 requests/s at most.
ONE_SLOT = Script(ttft_s=0.015, itl_s=0.005, tokens=2, slots=1)


@pytest.mark.network
def test_the_knee_is_the_last_rate_a_one_slot_server_sustains() -> None:
    """At 25/s the slot is busy half the time; at 100/s (twice its capacity) requests queue in the server,
    the k-th waiting ~10k ms, so well over 10% of the 40 run past the 250 ms SLO whatever the machine's
    speed (a slower box only makes the queue longer): the sweep stops there and reports 25/s."""
    with ScriptedServer(ONE_SLOT) as server:
        config = LoadTestConfig(base_url=server.base_url, requests=40, slo=SLO(ttft_ms=250.0), seed=1)
        result = rate_sweep(config, ["x"], start_rate=25.0, max_rate=400.0, growth=4.0)
    assert [run.config.rate for run in result.levels] == [25.0, 100.0]
    assert all(run.config.mode == "open" for run in result.levels)
    assert result.knee_rate == 25.0 and result.saturated
    sustained, overloaded = (run.summary for run in result.levels)
    assert sustained.slo_attainment >= 0.9 and overloaded.slo_attainment < 0.9
    assert sustained.succeeded == overloaded.succeeded == 40  # overload shows as waiting, not errors
    assert overloaded.ttft_ms.p50 is not None and sustained.ttft_ms.p50 is not None
    assert overloaded.ttft_ms.p50 > sustained.ttft_ms.p50 + 30
    # the waiting happened in the server, by its own clock: queued for the slot
    queued = [r["server_timings"]["queued_ms"] for r in result.levels[1].results]
    assert sorted(queued)[len(queued) // 2] > 30


@pytest.mark.network
def test_a_server_without_a_limit_sustains_every_rate() -> None:
    """Rates 4x apart: a stall of the shared box would have to stretch the 0.2 s level past 0.65 s to
    hide the growth in goodput."""
    with ScriptedServer(Script(ttft_s=0.015, itl_s=0.005, tokens=2)) as server:
        config = LoadTestConfig(base_url=server.base_url, requests=16, slo=SLO(ttft_ms=250.0), seed=2)
        result = rate_sweep(config, ["x"], start_rate=20.0, max_rate=80.0, growth=4.0)
    assert [run.config.rate for run in result.levels] == [20.0, 80.0]
    assert result.knee_rate == 80.0 and not result.saturated
    goodput = [run.summary.goodput_requests_per_s for run in result.levels]
    assert goodput[1] > goodput[0] * 2


@given(
    start=st.floats(0.01, 100.0),
    span=st.floats(1.0, 1000.0),
    growth=st.floats(1.1, 10.0),
)
def test_rate_levels_rise_by_growth_from_start_to_max(start: float, span: float, growth: float) -> None:
    rates = rate_levels(start, start * span, growth)
    assert rates[0] == start and rates[-1] == pytest.approx(start * span)
    steps = [later / earlier for earlier, later in itertools.pairwise(rates)]
    assert all(step > 1 and step <= growth * (1 + 1e-9) for step in steps)
    assert all(math.isclose(step, growth) for step in steps[:-1])


@pytest.mark.parametrize(("start", "stop", "growth"), [(0.0, 8.0, 2.0), (8.0, 4.0, 2.0), (1.0, 8.0, 1.0)])
def test_bad_rate_levels_are_refused(start: float, stop: float, growth: float) -> None:
    with pytest.raises(DataError, match="bad rate sweep"):
        rate_levels(start, stop, growth)


@pytest.mark.network
def test_cli_rate_sweep_writes_table_json_plots_and_store(tmp_path: Path) -> None:
    with ScriptedServer(Script(ttft_s=0.015, itl_s=0.005, tokens=2)) as server:
        result = runner.invoke(
            app,
            [
                "loadtest",
                "rate-sweep",
                "--url",
                server.base_url,
                "--start-rate",
                "20",
                "--max-rate",
                "80",
                "--growth",
                "4",
                "--requests",
                "8",
                "--prompt-tokens",
                "16",
                "--slo-ttft-ms",
                "1000",
                "--out",
                str(tmp_path / "rates"),
                "--store",
                str(tmp_path / "s.duckdb"),
            ],
        )
    assert result.exit_code == 0, result.output
    assert "rate sweep" in result.output and "knee: 80 req/s" in result.output, result.output
    document = json.loads((tmp_path / "rates" / "loadtest.json").read_text())
    assert document["mode"] == "rate-sweep" and document["knee_rate"] == 80.0
    assert [level["config"]["rate"] for level in document["levels"]] == [20.0, 80.0]
    assert (tmp_path / "rates" / "throughput.png").stat().st_size > 1000
    with OutcomeStore(tmp_path / "s.duckdb", read_only=True) as db:
        [recorded] = read_loadtests(db)
    assert recorded["mode"] == "rate-sweep" and recorded["knee_rate"] == 80.0


def test_cli_rate_sweep_with_bad_rates_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["rankroute", "loadtest", "rate-sweep", "--growth", "1", "--no-store", "--out", str(tmp_path)]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "bad rate sweep" in capsys.readouterr().err
