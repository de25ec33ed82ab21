"""Load levels, errors by kind, open loop, sweeps, results in the store and the CLI (network: 127.0.0.1)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rankroute.cli import app, main
from rankroute.data import OutcomeStore
from rankroute.loadtest import (
    SLO,
    LoadTestConfig,
    ResourceSampler,
    Script,
    ScriptedServer,
    read_loadtests,
    run_load_test,
    sweep,
    write_results,
)

pytestmark = pytest.mark.network
runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("status", "kind"), [(500, "http_5xx"), (429, "http_429"), (404, "http_4xx")])
def test_failed_requests_are_counted_by_kind(status: int, kind: str) -> None:
    script = Script(ttft_s=0.0, itl_s=0.0, tokens=4, fail_every=3, fail_status=status)
    with ScriptedServer(script) as server:
        run = run_load_test(LoadTestConfig(base_url=server.base_url, requests=9), ["x"])
    summary = run.summary
    assert summary.errors_by_kind == {kind: 3}
    assert summary.succeeded == 6 and summary.error_rate == pytest.approx(1 / 3)
    assert summary.goodput_requests_per_s == pytest.approx(summary.requests_per_s)
    assert summary.slo_attainment == pytest.approx(2 / 3)


def test_refused_connections_are_connect_errors() -> None:
    config = LoadTestConfig(base_url=f"http://127.0.0.1:{_free_port()}/v1", requests=3, connect_timeout_s=2)
    run = run_load_test(config, ["x"])
    assert run.summary.errors_by_kind == {"connect": 3} and run.summary.requests_per_s == 0


def test_goodput_counts_only_requests_within_the_slo() -> None:
    with ScriptedServer(Script(ttft_s=0.03, itl_s=0.0, tokens=2)) as server:
        tight = LoadTestConfig(base_url=server.base_url, requests=4, slo=SLO(ttft_ms=5.0))
        loose = tight.model_copy(update={"slo": SLO(ttft_ms=5000.0)})
        assert run_load_test(tight, ["x"]).summary.goodput_requests_per_s == 0
        summary = run_load_test(loose, ["x"]).summary
    assert (
        summary.goodput_requests_per_s == pytest.approx(summary.requests_per_s)
        and summary.slo_attainment == 1
    )


def test_open_loop_arrivals_follow_the_target_rate() -> None:
    """Poisson arrivals at 50/s: start gaps average about 1/50 s whatever the server's speed."""
    with ScriptedServer(Script(ttft_s=0.05, itl_s=0.01, tokens=5)) as server:
        config = LoadTestConfig(base_url=server.base_url, mode="open", rate=50, requests=60, seed=3)
        run = run_load_test(config, ["x"])
    starts = np.sort([r["start_s"] for r in run.results])
    assert run.summary.succeeded == 60
    # 60 exponential gaps: the mean is within 35% of 20 ms with probability > 0.99
    assert np.diff(starts).mean() == pytest.approx(0.02, rel=0.35)
    # open loop: requests overlap (each takes ~90 ms, arrivals every ~20 ms)
    assert max(r["start_s"] for r in run.results[:10]) < min(r["end_s"] for r in run.results[:10]) + 0.2
    assert run.summary.schedule_lag_ms is not None and run.summary.schedule_lag_ms.count == 60


def test_open_loop_reports_the_clients_own_lateness() -> None:
    """A client whose event loop stalls starts requests after their arrival time; the lag is reported,
    not silently folded into a slower arrival rate (coordinated omission)."""
    stalled: list[bool] = []

    def stall_once(_: object) -> None:
        if not stalled:
            stalled.append(True)
            time.sleep(0.15)  # blocks the event loop, as a busy client would

    with ScriptedServer(Script(ttft_s=0.005, itl_s=0.0, tokens=1)) as server:
        config = LoadTestConfig(base_url=server.base_url, mode="open", rate=100, requests=40, seed=1)
        run = run_load_test(config, ["x"], progress=stall_once)
    lags = [r["schedule_lag_ms"] for r in run.results]
    assert all(lag is not None and lag >= 0 for lag in lags)
    assert max(lags) >= 100.0  # the requests due during the stall started late, and say so


def test_duration_bound_stops_the_run() -> None:
    with ScriptedServer(Script(ttft_s=0.01, itl_s=0.0, tokens=2)) as server:
        config = LoadTestConfig(base_url=server.base_url, concurrency=2, duration_s=0.5, warmup_s=0.2)
        run = run_load_test(config, ["x"])
    measured = [r for r in run.results if not r["warmup"]]
    assert measured and all(r["start_s"] >= 0.2 for r in measured)
    assert max(r["start_s"] for r in run.results) < 0.75


def test_sweep_doubles_concurrency_and_finds_a_knee_when_the_server_saturates() -> None:
    """The scripted server is latency-bound (it waits, costing no CPU): two users nearly double its
    throughput, and the sweep stops where growth falls below 5% or at the cap."""
    with ScriptedServer(Script(ttft_s=0.02, itl_s=0.005, tokens=8)) as server:
        config = LoadTestConfig(base_url=server.base_url, requests=12, warmup_requests=1)
        result = sweep(config, ["x"], max_concurrency=4)
    concurrency = [run.config.concurrency for run in result.levels]
    assert concurrency[:2] == [1, 2] and concurrency == sorted(concurrency)
    throughput = [run.summary.output_tokens_per_s for run in result.levels]
    assert throughput[1] > throughput[0] * 1.3  # two users nearly double a latency-bound server
    assert result.knee_concurrency in concurrency


def test_results_land_in_the_store_and_the_run_folder(tmp_path: Path, store: OutcomeStore) -> None:
    with ScriptedServer(Script(ttft_s=0.0, itl_s=0.0, tokens=3)) as server:
        run = run_load_test(
            LoadTestConfig(base_url=server.base_url, requests=5, server_pid=os.getpid()), ["x"]
        )
    path = write_results(run, tmp_path / "run", store=store)
    document = json.loads(path.read_text())
    assert len(document["levels"][0]["results"]) == 5
    assert {Path(p).name for p in document["plots"]} == {"latency_cdf.png"}
    assert (tmp_path / "run" / "latency_cdf.png").stat().st_size > 1000
    [recorded] = read_loadtests(store)
    assert recorded["run_id"] == run.run_id and recorded["result_file"] == str(path.resolve())
    assert recorded["levels"][0]["summary"]["succeeded"] == 5
    assert "results" not in recorded["levels"][0]  # per-request rows stay in the JSON file
    assert recorded["levels"][0]["summary"]["resources"]["pid"] == os.getpid()


def test_resource_sampler_sees_this_process() -> None:
    with ResourceSampler(os.getpid(), interval_s=0.05) as sampler:
        sum(i * i for i in range(2_000_000))
    summary = sampler.summary()
    assert summary["rss_mb_max"] > 10 and summary["cpu_percent_max"] > 0


def test_cli_sweep_writes_table_json_and_plots(tmp_path: Path) -> None:
    with ScriptedServer(Script(ttft_s=0.01, itl_s=0.002, tokens=6)) as server:
        result = runner.invoke(
            app,
            [
                "loadtest",
                "sweep",
                "--url",
                server.base_url,
                "--requests",
                "6",
                "--max-concurrency",
                "2",
                "--prompt-tokens",
                "16",
                "--out",
                str(tmp_path / "sweep"),
                "--store",
                str(tmp_path / "s.duckdb"),
            ],
        )
    assert result.exit_code == 0, result.output
    assert "1 users" in result.output and "2 users" in result.output
    assert {p.name for p in (tmp_path / "sweep").iterdir()} == {
        "loadtest.json",
        "latency_cdf.png",
        "throughput.png",
    }
    with OutcomeStore(tmp_path / "s.duckdb", read_only=True) as db:
        [recorded] = read_loadtests(db)
    assert recorded["mode"] == "sweep" and len(recorded["levels"]) == 2


def test_cli_every_request_failing_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    monkeypatch.setattr(
        "sys.argv",
        [
            "rankroute",
            "loadtest",
            "run",
            "--url",
            url,
            "--requests",
            "2",
            "--no-store",
            "--out",
            str(tmp_path),
        ],
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "every request failed" in capsys.readouterr().err
    assert (tmp_path / "loadtest.json").exists()  # what was measured is kept
