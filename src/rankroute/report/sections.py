"""The report's sections, each built from the store (or a router-evaluation JSON) by the module that owns
the numbers: rank's leaderboards, Bradley-Terry ratings and Pareto front; route's curves, hulls and AIQ;
loadtest's recorded runs. A section with nothing to show says so instead of disappearing."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rankroute.data.errors import DataError
from rankroute.data.store import OutcomeStore
from rankroute.loadtest.results import read_loadtests
from rankroute.report.charts import Chart, Series, chart_html


@dataclass
class Section:
    """A titled block of the page; `html` is trusted markup (tables and charts built here)."""

    section_id: str
    title: str
    html: str
    charts: list[str] = field(default_factory=list)


def table_html(frame: pd.DataFrame, table_id: str, *, digits: int = 3) -> str:
    """An HTML table, numbers rounded, missing values blank, every cell escaped."""

    def cell(value: Any) -> str:
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
        return html.escape(str(value))

    frame = frame.copy()
    for name in frame.columns:  # ranks and counts read as whole numbers
        if str(name).startswith(("rank", "n_")) and pd.api.types.is_float_dtype(frame[name]):
            frame[name] = frame[name].astype("Int64")
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f'<table id="{table_id}" class="data"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _empty(section_id: str, title: str, why: str) -> Section:
    return Section(section_id, title, f'<p class="empty">{html.escape(why)}</p>')


def _columns(frame: pd.DataFrame, wanted: list[str]) -> pd.DataFrame:
    return frame[[c for c in wanted if c in frame.columns]]


def leaderboard_sections(
    store: OutcomeStore, *, bootstrap: int = 200, metric: str | None = None
) -> list[Section]:
    """Per-task leaderboards with bootstrap CIs, the overall table, and the cost/quality Pareto plot."""
    from rankroute.rank import leaderboard_from_store
    from rankroute.rank.choose import pareto_front

    if store.counts().get("outcomes", 0) == 0:
        return [_empty("leaderboards", "Task leaderboards", "No outcomes in the store yet.")]
    try:
        board = leaderboard_from_store(store, bootstrap=bootstrap, metric=metric)
    except DataError as exc:
        return [_empty("leaderboards", "Task leaderboards", f"Cannot rank these outcomes: {exc}")]
    parts, charts = [], []
    for task, group in board.tasks.groupby("task", sort=True):
        table = _columns(
            group.sort_values("quality", ascending=False),
            ["rank", "model", "quality", "ci_low", "ci_high", "n_prompts", "usd_per_1k", "latency_p50_ms"],
        )
        parts.append(f"<h3>{html.escape(str(task))}</h3>" + table_html(table, f"leaderboard-{_slug(task)}"))
    overall = board.overall
    score = "mean_normalised_score"
    parts.insert(
        0,
        "<h3>Overall (mean normalised score over tasks)</h3>"
        + table_html(
            _columns(overall, ["rank", "model", score, "score_ci_low", "score_ci_high", "mean_win_rate"]),
            "leaderboard-overall",
        ),
    )
    if {"score_ci_low", "score_ci_high"} <= set(overall.columns):
        ordered = overall.sort_values(score)
        chart = Chart(
            "chart-leaderboard",
            f"Overall score with {board.ci_level:.0%} intervals",
            "mean normalised score",
            "",
            [
                Series(
                    "models",
                    ordered[score].tolist(),
                    ordered["model"].astype(str).tolist(),
                    x_low=ordered["score_ci_low"].tolist(),
                    x_high=ordered["score_ci_high"].tolist(),
                )
            ],
            categorical_y=True,
            height=max(260, 28 * len(ordered) + 120),
        )
        parts.append(chart_html(chart))
        charts.append(chart.chart_id)
    sections = [Section("leaderboards", "Task leaderboards", "".join(parts), charts)]
    sections.append(_pareto_section(board.tasks, board.overall, pareto_front))
    return sections


def _pareto_section(tasks: pd.DataFrame, overall: pd.DataFrame, pareto_front: Any) -> Section:
    """Mean quality over tasks against cost per 1k prompts, the non-dominated front drawn."""
    if "usd_per_1k" not in tasks.columns:
        return _empty("pareto", "Cost / quality Pareto front", "No costs recorded.")
    per_model = tasks.groupby("model").agg(quality=("quality", "mean"), usd_per_1k=("usd_per_1k", "mean"))
    per_model = per_model.dropna().reset_index()
    if per_model.empty:
        return _empty("pareto", "Cost / quality Pareto front", "No model has both a cost and a quality.")
    per_model["pareto"] = pareto_front(per_model)
    front = per_model[per_model["pareto"]].sort_values("usd_per_1k")
    positive = per_model["usd_per_1k"][per_model["usd_per_1k"] > 0]
    chart = Chart(
        "chart-pareto",
        "Cost / quality (mean over tasks)",
        "USD per 1k prompts",
        "mean quality",
        [
            Series(
                "models",
                per_model["usd_per_1k"].tolist(),
                per_model["quality"].tolist(),
                labels=per_model["model"].astype(str).tolist(),
            ),
            Series(
                "Pareto front",
                front["usd_per_1k"].tolist(),
                front["quality"].tolist(),
                mode="lines+markers",
                labels=front["model"].astype(str).tolist(),
            ),
        ],
        log_x=bool(len(positive) and positive.max() / positive.min() > 10),
    )
    table = table_html(per_model.sort_values("usd_per_1k"), "pareto-table")
    return Section("pareto", "Cost / quality Pareto front", chart_html(chart) + table, [chart.chart_id])


def ratings_section(store: OutcomeStore, *, bootstrap: int = 100) -> Section:
    """Bradley-Terry ratings (Elo scale) from the store's battles, else from per-prompt outcome battles."""
    from rankroute.data.matrix import OutcomeMatrix
    from rankroute.rank import BradleyTerry, battles_from_matrix

    battles = store.read_battles()
    source = "pairwise battles in the store"
    if battles.empty and store.counts().get("outcomes", 0):
        try:
            battles = battles_from_matrix(OutcomeMatrix.from_store(store))
        except DataError:
            battles = pd.DataFrame()
        source = "per-prompt battles derived from outcomes (higher quality wins, equal ties)"
    if battles.empty:
        return _empty("ratings", "Pairwise ratings", "No battles and no outcomes to derive them from.")
    try:
        ratings = BradleyTerry(bootstrap=bootstrap, seed=0).fit(battles).to_frame()
    except DataError as exc:
        return _empty("ratings", "Pairwise ratings", f"Cannot fit ratings: {exc}")
    ordered = ratings.sort_values("rating")
    chart = Chart(
        "chart-ratings",
        "Bradley-Terry ratings (Elo scale, 95% bootstrap CI)",
        "rating",
        "",
        [
            Series(
                "models",
                ordered["rating"].tolist(),
                ordered["model"].astype(str).tolist(),
                x_low=ordered["ci_low"].tolist(),
                x_high=ordered["ci_high"].tolist(),
            )
        ],
        categorical_y=True,
        height=max(260, 28 * len(ordered) + 120),
    )
    table = table_html(
        _columns(ratings, ["rank", "model", "rating", "ci_low", "ci_high", "battles"]), "ratings"
    )
    body = f"<p>Source: {html.escape(source)}.</p>" + table + chart_html(chart)
    return Section("ratings", "Pairwise ratings", body, [chart.chart_id])


def router_section(evaluations: list[tuple[str, dict[str, Any]]]) -> Section:
    """Router cost-quality curves with their non-decreasing convex hulls, and the AIQ table, per file."""
    if not evaluations:
        return _empty(
            "routers",
            "Router evaluation",
            "No router evaluation given (run `rankroute route eval --out DIR` and pass --route-eval DIR).",
        )
    parts, charts = [], []
    for index, (name, evaluation) in enumerate(evaluations):
        rows = pd.DataFrame(evaluation.get("rows", []))
        parts.append(f"<h3>{html.escape(name)}</h3>")
        if not rows.empty:
            wanted = [
                "dataset",
                "router",
                "aiq",
                "aiq_ci_low",
                "aiq_ci_high",
                "max_quality",
                "apgr",
                "cpt_50",
            ]
            routers = rows[
                ~rows["router"].astype(str).str.startswith("single:")
            ]  # singles: points on the plot
            table = _columns(routers, wanted).sort_values(["dataset", "aiq"], ascending=[True, False])
            parts.append(table_html(table, f"router-rows-{index}"))
        curves = evaluation.get("curves", {})
        dataset = "all" if "all" in curves else next(iter(curves), None)
        if dataset is None:
            continue
        series = []
        for router, curve in curves[dataset].items():
            if router.startswith("single:") or not curve.get("cost"):
                continue
            series.append(
                Series(
                    f"{router} hull", curve.get("hull_cost", []), curve.get("hull_quality", []), mode="lines"
                )
            )
            # the operating points as dots (zero's are the single models); the hull is the line
            series.append(Series(f"{router} points", curve["cost"], curve["quality"]))
        singles = evaluation.get("single_points", {}).get(dataset, {})
        if singles:
            series.append(
                Series(
                    "single models",
                    [p[0] for p in singles.values()],
                    [p[1] for p in singles.values()],
                    labels=list(singles),
                )
            )
        chart = Chart(
            f"chart-router-{index}",
            f"Cost-quality curves ({dataset})",
            "cost per prompt (USD)",
            "quality",
            series,
            log_x=True,
            height=480,
        )
        parts.append(chart_html(chart))
        charts.append(chart.chart_id)
    return Section("routers", "Router evaluation", "".join(parts), charts)


def read_route_evaluation(path: str | Path) -> tuple[str, dict[str, Any]]:
    """A router evaluation: a run folder (evaluation.json) or the JSON `route eval --json/--out` wrote."""
    source = Path(path)
    file = source / "evaluation.json" if source.is_dir() else source
    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read router evaluation: {exc}", source=str(file)) from exc
    if isinstance(data, list):  # `route eval --json` writes the rows alone
        data = {"rows": data}
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise DataError(
            "not a router evaluation (no 'rows' list)",
            source=str(file),
            hint="pass the folder of `rankroute route eval --out` or its --json file",
        )
    return (source.name or str(source)), data


def loadtest_section(store: OutcomeStore) -> Section:
    """Every recorded load test: per level throughput, TTFT/ITL/latency percentiles, goodput, errors."""
    runs = read_loadtests(store)
    if not runs:
        return _empty(
            "loadtests", "Load tests", "No load tests recorded (run `rankroute loadtest run|sweep`)."
        )
    parts, charts = [], []
    for index, run in enumerate(runs):
        rows = []
        for level in run.get("levels", []):
            config, summary = level["config"], level["summary"]
            rows.append(
                {
                    "level": f"{config['concurrency']} users"
                    if config["mode"] == "closed"
                    else f"{config['rate']} req/s",
                    "requests": summary["requests"],
                    "req/s": summary["requests_per_s"],
                    "out tok/s": summary["output_tokens_per_s"],
                    "TTFT p50 ms": summary["ttft_ms"]["p50"],
                    "TTFT p99 ms": summary["ttft_ms"]["p99"],
                    "ITL p50 ms": summary["itl_ms"]["p50"],
                    "latency p50 ms": summary["latency_ms"]["p50"],
                    "latency p99 ms": summary["latency_ms"]["p99"],
                    "goodput req/s": summary["goodput_requests_per_s"],
                    "error rate": summary["error_rate"],
                }
            )
        frame = pd.DataFrame(rows)
        by_rate = run.get("mode") == "rate-sweep"
        knee = run.get("knee_rate") if by_rate else run.get("knee_concurrency")
        when = str(run.get("created_at", ""))[:19]
        heading = f"{run.get('model')} at {run.get('base_url')} ({run.get('mode')}, {when})"
        if knee is not None:
            heading += f"; knee at {knee} req/s" if by_rate else f"; knee at {knee} users"
        parts.append(f"<h3>{html.escape(heading)}</h3>" + table_html(frame, f"loadtest-{index}"))
        if len(rows) > 1:
            levels = run["levels"]
            load = [float(level["config"]["rate" if by_rate else "concurrency"]) for level in levels]
            chart = Chart(
                f"chart-loadtest-{index}",
                "Throughput against arrival rate" if by_rate else "Throughput against concurrency",
                "offered requests/s" if by_rate else "concurrent users",
                "output tokens/s",
                [
                    Series(
                        "output tokens/s",
                        load,
                        frame["out tok/s"].tolist(),
                        mode="lines+markers",
                        labels=[f"p50 latency {v:.0f} ms" for v in frame["latency p50 ms"].fillna(0)],
                    )
                ],
                log_x=True,
                height=360,
            )
            parts.append(chart_html(chart))
            charts.append(chart.chart_id)
    return Section("loadtests", "Load tests", "".join(parts), charts)


def _slug(value: object) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in str(value)).strip("-").lower()
