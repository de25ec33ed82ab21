"""The report: built from a real store, checked as HTML and in a real headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.browser import ARTIFACTS, launch_chromium, playwright_with_chromium
from tests.report.conftest import ReportInputs
from typer.testing import CliRunner

from rankroute.cli import app, main
from rankroute.data import OutcomeStore
from rankroute.loadtest import SLO, LoadTestConfig, Script, ScriptedServer, rate_sweep, write_results
from rankroute.report import read_route_evaluation, render_html


@pytest.fixture(scope="module")
def report_file(report_inputs: ReportInputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("page") / "report.html"
    result = CliRunner().invoke(
        app,
        [
            "report",
            "--store",
            str(report_inputs.store_path),
            "--out",
            str(out),
            "--route-eval",
            str(report_inputs.route_eval),
            "--bootstrap",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_report_is_self_contained(report_file: Path) -> None:
    page = report_file.read_text()
    assert "Plotly.newPlot" in page and "plotly.js" in page.lower()
    # nothing is fetched: no external scripts, styles or images
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', page)
    assert page.count('<noscript><img class="fallback"') == page.count("Plotly.newPlot(")


def test_report_in_headless_chromium(report_inputs: ReportInputs, report_file: Path) -> None:
    sync_api = playwright_with_chromium()
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        outside: list[str] = []

        def only_local(route: object) -> None:
            request_url = route.request.url  # type: ignore[attr-defined]
            if request_url.startswith(("file:", "data:")):
                route.continue_()  # type: ignore[attr-defined]
            else:
                outside.append(request_url)
                route.abort()  # type: ignore[attr-defined]

        page.route("**/*", only_local)
        page.goto(report_file.as_uri(), wait_until="load")
        page.wait_for_function("document.querySelectorAll('.plot .main-svg').length > 0")

        def rows(selector: str) -> int:
            return int(page.locator(f"{selector} tbody tr").count())

        def column(selector: str, index: int) -> list[str]:
            return [
                text.strip()
                for text in page.locator(f"{selector} tbody tr td:nth-child({index})").all_inner_texts()
            ]

        assert sorted(column("#leaderboard-overall", 2)) == report_inputs.models
        for task in report_inputs.tasks:
            slug = re.sub(r"[^a-z0-9]+", "-", task.lower()).strip("-")
            assert rows(f"#leaderboard-{slug}") == len(report_inputs.models)
        assert sorted(column("#ratings", 2)) == report_inputs.voted_models
        assert rows("#router-rows-0") == report_inputs.router_rows
        assert rows("#loadtest-0") == report_inputs.loadtest_levels
        # every chart was drawn by plotly.js, with its traces
        charts = page.locator(".plot")
        assert charts.count() >= 4
        for index in range(charts.count()):
            chart = charts.nth(index)
            assert chart.locator(".main-svg").count() > 0, chart.get_attribute("id")
        assert page.evaluate("document.getElementById('chart-pareto').data.length") == 2
        routers = page.evaluate("document.getElementById('chart-router-0').data.map(t => t.name)")
        assert "oracle hull" in routers and "single models" in routers
        assert page.locator("#chart-pareto .scatterlayer .point").count() == len(
            report_inputs.models
        ) + page.evaluate("document.getElementById('chart-pareto').data[1].x.length")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()
    assert problems == [] and outside == []
    assert (ARTIFACTS / "report.png").stat().st_size > 50_000


def test_render_html_of_an_empty_store_says_what_is_missing(tmp_path: Path) -> None:
    with OutcomeStore(tmp_path / "empty.duckdb") as store:
        page = render_html(store)
    assert "No outcomes in the store yet." in page
    assert "No load tests recorded" in page and "No router evaluation given" in page


def test_route_eval_rows_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text('[{"dataset": "all", "router": "oracle", "aiq": 0.9}]')
    name, evaluation = read_route_evaluation(path)
    assert name == "rows.json" and evaluation["rows"][0]["aiq"] == 0.9


@pytest.mark.parametrize(
    ("content", "message"), [("{broken", "cannot read router evaluation"), ('{"a": 1}', "no 'rows'")]
)
def test_bad_route_eval_file_exits_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str,
    message: str,
) -> None:
    bad = tmp_path / "eval.json"
    bad.write_text(content)
    with OutcomeStore(tmp_path / "s.duckdb"):
        pass
    monkeypatch.setattr(
        "sys.argv",
        [
            "rankroute",
            "report",
            "--store",
            str(tmp_path / "s.duckdb"),
            "--route-eval",
            str(bad),
            "--out",
            str(tmp_path / "r.html"),
        ],
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_missing_store_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["rankroute", "report", "--store", str(tmp_path / "none.duckdb")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and "no store at" in capsys.readouterr().err


def test_rate_sweep_is_drawn_against_arrival_rate(tmp_path: Path) -> None:
    script = Script(ttft_s=0.01, itl_s=0.002, tokens=2, slots=1)
    with ScriptedServer(script) as server, OutcomeStore(tmp_path / "s.duckdb") as store:
        config = LoadTestConfig(base_url=server.base_url, requests=12, slo=SLO(ttft_ms=200))
        result = rate_sweep(config, ["x"], start_rate=20.0, max_rate=640.0, growth=4.0)
        write_results(result, tmp_path / "loadtest", store=store, plots=False)
        page = render_html(store)
    assert "Throughput against arrival rate" in page and "offered requests/s" in page
    if result.knee_rate is not None:
        assert f"knee at {result.knee_rate} req/s" in page
    assert "Throughput against concurrency" not in page
