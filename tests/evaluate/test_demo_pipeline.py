"""The demo pipeline end to end on real ARC-Challenge and GSM8K prompts, with two HTTP models of known skill.

The local-model stage is exercised by the real demo run (docs/benchmarks.md); here two
OpenAI-compatible servers on 127.0.0.1 stand in: a cheap one that always says "A" / "#### 0" and a pricier
one that knows every gold answer, so the leaderboard, router scores and report can be checked exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_openai_server import ServerState, serve
from rich.console import Console

from rankroute.backends import BackendConfig
from rankroute.evaluate.demo import DemoSettings, run_demo

pytestmark = pytest.mark.network


def test_demo_evaluates_ranks_routes_and_reports(tmp_path: Path) -> None:
    from rankroute.evaluate.tasks import get_task
    from rankroute.evaluate.tasks.sources import shared_data_root

    if not (shared_data_root() / "benchmarks" / "arc_challenge").exists():
        pytest.skip(f"shared data not found at {shared_data_root()} (clone the project beside ../shared)")
    arc, gsm8k = get_task("arc_challenge"), get_task("gsm8k")
    gold: dict[str, str] = {}
    for inst in arc.instances(limit=12, seed=0):
        gold[inst.messages[-1]["content"]] = f"The answer is {inst.prompt.reference}"
    for inst in gsm8k.instances(limit=6, seed=0):
        gold[inst.messages[-1]["content"]] = f"#### {inst.prompt.reference}"
    strong = ServerState(answer=lambda prompt: gold.get(prompt, "no idea"))
    weak = ServerState(answer=lambda prompt: "#### 0" if "####" in prompt else "A")
    out = tmp_path / "demo"
    with serve(strong) as strong_url, serve(weak) as weak_url:
        backends = [
            BackendConfig(name="knows-all", base_url=strong_url, input_price_per_m=10, output_price_per_m=30),
            BackendConfig(name="says-a", base_url=weak_url, input_price_per_m=0.1, output_price_per_m=0.3),
        ]
        settings = DemoSettings(arc=12, gsm8k=6, out=out, backends=backends, test_size=0.5)
        result = run_demo(settings, Console(width=200, record=True))

    board = result.leaderboard
    assert board is not None and list(board["model"]) == ["knows-all", "says-a"]
    assert board.loc[0, "quality"] == 1.0 and board.loc[0, "n"] == 18
    assert board.loc[1, "quality"] < 0.5 and board.loc[1, "cost_usd"] < board.loc[0, "cost_usd"]
    routing = result.routing
    assert routing is not None
    aiq = dict(zip(routing["router"], routing["aiq"], strict=True))
    assert aiq["oracle"] >= max(aiq["single:knows-all"], aiq["single:says-a"]) - 1e-12
    for name in ("report.md", "leaderboard.csv", "routing.json", "cost_quality.png"):
        assert (out / name).stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "| knows-all |" in report and "oracle" in report and "| evaluate |" in report
    assert {"evaluate", "leaderboard", "route", "report", "total"} <= set(result.stage_s)
    assert json.loads((out / "routing.json").read_text())["rows"]
    # a second run resumes from the run folder's store: nothing is asked again
    with serve(strong) as strong_url, serve(weak) as weak_url:
        backends = [
            b.model_copy(update={"base_url": u})
            for b, u in zip(backends, (strong_url, weak_url), strict=True)
        ]
        again = run_demo(DemoSettings(arc=12, gsm8k=6, out=out, backends=backends, learned=False), Console())
    assert again.report is not None and again.report.completed == 0 and again.report.already_stored == 36


def test_undefined_figures_print_as_a_dash() -> None:
    """APGR is None where the dearer model is not the better one; tables show '-', never 'None' or 'nan'."""
    from rankroute.evaluate.demo import _cell

    assert [_cell(v) for v in (None, float("nan"), 0.41234, "knn", 58)] == ["-", "-", "0.4123", "knn", "58"]
