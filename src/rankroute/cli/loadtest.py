"""`rankroute loadtest ...`: Load-test any OpenAI-compatible endpoint."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from rankroute.data.errors import DataError

if TYPE_CHECKING:
    from rankroute.loadtest import LoadSummary, LoadTestConfig, RequestResult

loadtest_app = typer.Typer(help="Load-test any OpenAI-compatible endpoint.", no_args_is_help=True)
console = Console()

_URL = typer.Option("http://127.0.0.1:8000/v1", "--url", help="the endpoint's base URL (…/v1)")
_MODEL = typer.Option("default", "--model", help="model name sent in each request")
_CONFIG = typer.Option(None, "--config", help="YAML file of LoadTestConfig settings (flags override it)")
_REQUESTS = typer.Option(None, "--requests", help="measured requests (per level for a sweep)")
_DURATION = typer.Option(None, "--duration", help="seconds per level, after warm-up")
_WARMUP = typer.Option(0, "--warmup-requests", help="first requests sent but not measured")
_MAX_TOKENS = typer.Option(128, "--max-tokens")
_PROMPTS = typer.Option(None, "--prompts", help="JSONL ('prompt' field) or text file, one prompt a line")
_TASK = typer.Option(None, "--task", help="built-in evaluation task whose prompts to send (e.g. gsm8k)")
_SYNTHETIC = typer.Option(128, "--prompt-tokens", help="synthetic prompts: mean length in tokens")
_STDDEV = typer.Option(0.0, "--prompt-tokens-stddev", help="synthetic prompts: length spread in tokens")
_SLO_TTFT = typer.Option(500.0, "--slo-ttft-ms", help="goodput: a request must start within this")
_SLO_ITL = typer.Option(None, "--slo-itl-ms", help="goodput: mean inter-token latency bound")
_PID = typer.Option(None, "--server-pid", help="sample CPU and RSS of this local server process")
_OUT = typer.Option(Path("runs/loadtest"), "--out", help="run folder: loadtest.json and PNG plots")
_STORE = typer.Option(None, "--store", help="outcome store to record the run in (default: the user store)")
_NO_STORE = typer.Option(False, "--no-store", help="write the run folder only")
_ENDPOINT = typer.Option("chat", "--endpoint", help="chat | completions")
_IGNORE_EOS = typer.Option(False, "--ignore-eos", help="ask the server to decode exactly --max-tokens")
_TIMEOUT = typer.Option(120.0, "--timeout", help="read timeout per request, seconds")


def _settings(config: Path | None, **flags: Any) -> LoadTestConfig:
    from rankroute.loadtest import load_config, make_config

    flags["api_key"] = os.environ.get("OPENAI_API_KEY") or None
    slo = {"ttft_ms": flags.pop("slo_ttft_ms"), "itl_ms": flags.pop("slo_itl_ms")}
    flags["slo"] = slo
    if config is not None:
        return load_config(config, **flags)
    if flags.get("requests") is None and flags.get("duration_s") is None:
        flags["requests"] = 100
    return make_config({key: value for key, value in flags.items() if value is not None})


def _prompts(
    settings: LoadTestConfig, prompts: Path | None, task: str | None, tokens: int, stddev: float
) -> list[str]:
    from rankroute.loadtest import prompts_from_file, prompts_from_task, synthetic_prompts

    if prompts is not None and task is not None:
        raise DataError("give --prompts or --task, not both")
    if prompts is not None:
        return prompts_from_file(prompts)
    if task is not None:
        return prompts_from_task(task, seed=settings.seed)
    count = (settings.requests or 200) + settings.warmup_requests
    return synthetic_prompts(min(count, 2000), mean_tokens=tokens, stddev_tokens=stddev, seed=settings.seed)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("errors {task.fields[errors]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _summary_table(title: str, rows: list[LoadSummary], labels: list[str], knee: str | None = None) -> Table:
    table = Table(title=title)
    for column in ("level", "req/s", "out tok/s", "TTFT p50/p99 ms", "ITL p50/p99 ms", "latency p50/p99 ms"):
        table.add_column(column, justify="right")
    table.add_column("tok/s per req p50", justify="right")
    table.add_column("goodput req/s", justify="right")
    table.add_column("errors", justify="right")

    def pair(low: float | None, high: float | None) -> str:
        return "-" if low is None or high is None else f"{low:.1f} / {high:.1f}"

    for label, summary in zip(labels, rows, strict=True):
        marker = " (knee)" if knee is not None and label == knee else ""
        errors = ", ".join(f"{kind} {count}" for kind, count in summary.errors_by_kind.items()) or "0"
        table.add_row(
            label + marker,
            f"{summary.requests_per_s:.2f}",
            f"{summary.output_tokens_per_s:.1f}",
            pair(summary.ttft_ms.p50, summary.ttft_ms.p99),
            pair(summary.itl_ms.p50, summary.itl_ms.p99),
            pair(summary.latency_ms.p50, summary.latency_ms.p99),
            "-" if summary.request_tokens_per_s.p50 is None else f"{summary.request_tokens_per_s.p50:.1f}",
            f"{summary.goodput_requests_per_s:.2f}",
            errors,
        )
    return table


def _record(result: Any, out: Path, store: str | None, no_store: bool) -> None:
    from rankroute.data.store import OutcomeStore
    from rankroute.loadtest import write_results

    if no_store:
        path = write_results(result, out)
    else:
        with OutcomeStore(store) as db:
            path = write_results(result, out, store=db)
        console.print(f"recorded in store {db.location}", highlight=False)
    console.print(f"results: {path}", highlight=False)


@loadtest_app.command("run")
def run_command(
    url: str = _URL,
    model: str = _MODEL,
    config: Path | None = _CONFIG,
    mode: str = typer.Option("closed", "--mode", help="closed (N users) | open (Poisson arrivals)"),
    concurrency: int = typer.Option(1, "--concurrency", help="closed loop: concurrent users"),
    rate: float | None = typer.Option(None, "--rate", help="open loop: arrivals per second"),
    requests: int | None = _REQUESTS,
    duration: float | None = _DURATION,
    warmup_requests: int = _WARMUP,
    max_tokens: int = _MAX_TOKENS,
    prompts: Path | None = _PROMPTS,
    task: str | None = _TASK,
    prompt_tokens: int = _SYNTHETIC,
    prompt_tokens_stddev: float = _STDDEV,
    slo_ttft_ms: float | None = _SLO_TTFT,
    slo_itl_ms: float | None = _SLO_ITL,
    server_pid: int | None = _PID,
    endpoint: str = _ENDPOINT,
    ignore_eos: bool = _IGNORE_EOS,
    timeout: float = _TIMEOUT,
    out: Path = _OUT,
    store: str | None = _STORE,
    no_store: bool = _NO_STORE,
) -> None:
    """One load level: closed loop at --concurrency users, or open loop at --rate requests/s."""
    from rankroute.loadtest import arun_load_test

    settings = _settings(
        config,
        base_url=url,
        model=model,
        mode=mode,
        concurrency=concurrency,
        rate=rate,
        requests=requests,
        duration_s=duration,
        warmup_requests=warmup_requests,
        max_tokens=max_tokens,
        slo_ttft_ms=slo_ttft_ms,
        slo_itl_ms=slo_itl_ms,
        server_pid=server_pid,
        endpoint=endpoint,
        ignore_eos=ignore_eos,
        timeout_s=timeout,
    )
    texts = _prompts(settings, prompts, task, prompt_tokens, prompt_tokens_stddev)
    with _progress() as progress:
        bar = _LevelBars(progress, [f"{settings.mode} loop"], settings.requests)
        run = asyncio.run(arun_load_test(settings, texts, progress=bar.advance))
    label = f"{settings.concurrency} users" if settings.mode == "closed" else f"{settings.rate:g} req/s"
    console.print(_summary_table(f"load test {settings.base_url} ({settings.model})", [run.summary], [label]))
    _record(run, out, store, no_store)
    if run.summary.succeeded == 0:
        raise DataError(
            f"every request failed ({run.summary.errors_by_kind})",
            hint="check --url, --model and that the server is up; details in loadtest.json",
        )


class _LevelBars:
    """One progress bar per sweep level (labels known up front), each counting its measured requests and
    errors; the next level's bar opens when a level ends, and `finish` drops the one never run."""

    def __init__(self, progress: Progress, labels: list[str], total: int | None) -> None:
        self.progress, self.labels, self.total = progress, labels, total
        self.bars: list[TaskID] = []
        self.errors = 0
        self.next_level()

    def next_level(self, _: Any = None) -> None:
        if len(self.bars) < len(self.labels):
            self.bars.append(self.progress.add_task(self.labels[len(self.bars)], total=self.total, errors=0))
            self.errors = 0

    def advance(self, result: RequestResult) -> None:
        self.errors += 0 if result.ok else 1
        if not result.warmup:
            self.progress.update(self.bars[-1], advance=1, errors=self.errors)

    def finish(self, levels_run: int) -> None:
        for bar in self.bars[levels_run:]:
            self.progress.remove_task(bar)


@loadtest_app.command("sweep")
def sweep_command(
    url: str = _URL,
    model: str = _MODEL,
    config: Path | None = _CONFIG,
    max_concurrency: int = typer.Option(
        32, "--max-concurrency", help="highest level (1, 2, 4, ... up to it)"
    ),
    min_gain: float = typer.Option(0.05, "--min-gain", help="stop once throughput grows by less than this"),
    requests: int | None = _REQUESTS,
    duration: float | None = _DURATION,
    warmup_requests: int = _WARMUP,
    max_tokens: int = _MAX_TOKENS,
    prompts: Path | None = _PROMPTS,
    task: str | None = _TASK,
    prompt_tokens: int = _SYNTHETIC,
    prompt_tokens_stddev: float = _STDDEV,
    slo_ttft_ms: float | None = _SLO_TTFT,
    slo_itl_ms: float | None = _SLO_ITL,
    server_pid: int | None = _PID,
    endpoint: str = _ENDPOINT,
    ignore_eos: bool = _IGNORE_EOS,
    timeout: float = _TIMEOUT,
    out: Path = _OUT,
    store: str | None = _STORE,
    no_store: bool = _NO_STORE,
) -> None:
    """Closed loop at 1, 2, 4, ... users until throughput saturates; reports the knee."""
    from rankroute.loadtest import asweep, concurrency_levels

    settings = _settings(
        config,
        base_url=url,
        model=model,
        mode="closed",
        concurrency=1,
        requests=requests,
        duration_s=duration,
        warmup_requests=warmup_requests,
        max_tokens=max_tokens,
        slo_ttft_ms=slo_ttft_ms,
        slo_itl_ms=slo_itl_ms,
        server_pid=server_pid,
        endpoint=endpoint,
        ignore_eos=ignore_eos,
        timeout_s=timeout,
    )
    texts = _prompts(settings, prompts, task, prompt_tokens, prompt_tokens_stddev)
    with _progress() as progress:
        bars = _LevelBars(
            progress, [f"{c} users" for c in concurrency_levels(max_concurrency)], settings.requests
        )
        result = asyncio.run(
            asweep(
                settings,
                texts,
                max_concurrency=max_concurrency,
                min_gain=min_gain,
                progress=bars.advance,
                on_level=bars.next_level,
            )
        )
        bars.finish(len(result.levels))
    labels = [f"{run.config.concurrency} users" for run in result.levels]
    knee = f"{result.knee_concurrency} users" if result.knee_concurrency is not None else None
    title = f"sweep {settings.base_url} ({settings.model}); " + (
        "saturated" if result.saturated else "not saturated"
    )
    console.print(_summary_table(title, [run.summary for run in result.levels], labels, knee))
    _record(result, out, store, no_store)


@loadtest_app.command("rate-sweep")
def rate_sweep_command(
    url: str = _URL,
    model: str = _MODEL,
    config: Path | None = _CONFIG,
    start_rate: float = typer.Option(1.0, "--start-rate", help="first offered rate, requests/s"),
    max_rate: float = typer.Option(64.0, "--max-rate", help="highest offered rate, requests/s"),
    growth: float = typer.Option(2.0, "--growth", help="each rate is the last one times this"),
    min_attainment: float = typer.Option(
        0.9, "--min-attainment", help="a rate is sustained while this share of requests meets the SLO"
    ),
    min_gain: float = typer.Option(0.05, "--min-gain", help="stop once goodput grows by less than this"),
    requests: int | None = _REQUESTS,
    duration: float | None = _DURATION,
    warmup_requests: int = _WARMUP,
    max_tokens: int = _MAX_TOKENS,
    prompts: Path | None = _PROMPTS,
    task: str | None = _TASK,
    prompt_tokens: int = _SYNTHETIC,
    prompt_tokens_stddev: float = _STDDEV,
    slo_ttft_ms: float | None = _SLO_TTFT,
    slo_itl_ms: float | None = _SLO_ITL,
    server_pid: int | None = _PID,
    endpoint: str = _ENDPOINT,
    ignore_eos: bool = _IGNORE_EOS,
    timeout: float = _TIMEOUT,
    out: Path = _OUT,
    store: str | None = _STORE,
    no_store: bool = _NO_STORE,
) -> None:
    """Open loop (Poisson arrivals) at rising rates until goodput under the SLO falls off; reports the
    knee: the highest rate the server sustains within the SLO."""
    from rankroute.loadtest import arate_sweep, rate_levels

    rates = rate_levels(start_rate, max_rate, growth)
    settings = _settings(
        config,
        base_url=url,
        model=model,
        mode="open",
        rate=rates[0],
        requests=requests,
        duration_s=duration,
        warmup_requests=warmup_requests,
        max_tokens=max_tokens,
        slo_ttft_ms=slo_ttft_ms,
        slo_itl_ms=slo_itl_ms,
        server_pid=server_pid,
        endpoint=endpoint,
        ignore_eos=ignore_eos,
        timeout_s=timeout,
    )
    texts = _prompts(settings, prompts, task, prompt_tokens, prompt_tokens_stddev)
    with _progress() as progress:
        bars = _LevelBars(progress, [f"{rate:g} req/s" for rate in rates], settings.requests)
        result = asyncio.run(
            arate_sweep(
                settings,
                texts,
                start_rate=start_rate,
                max_rate=max_rate,
                growth=growth,
                min_attainment=min_attainment,
                min_gain=min_gain,
                progress=bars.advance,
                on_level=bars.next_level,
            )
        )
        bars.finish(len(result.levels))
    labels = [f"{run.config.rate:g} req/s" for run in result.levels]
    knee = f"{result.knee_rate:g} req/s" if result.knee_rate is not None else None
    title = f"rate sweep {settings.base_url} ({settings.model}); " + (
        "saturated" if result.saturated else "not saturated"
    )
    console.print(_summary_table(title, [run.summary for run in result.levels], labels, knee))
    console.print(
        f"knee: {knee} (highest rate with {min_attainment:.0%} of requests within the SLO)"
        if knee
        else "no rate was sustained within the SLO: lower --start-rate",
        highlight=False,
    )
    _record(result, out, store, no_store)


def report_command(
    store: str | None = typer.Option(None, "--store", help="outcome store (default: the user store)"),
    out: Path = typer.Option(Path("report.html"), "--out", help="the HTML file to write"),
    route_eval: list[Path] = typer.Option(
        [], "--route-eval", help="`rankroute route eval --out` folder or --json file (repeatable)"
    ),
    bootstrap: int = typer.Option(200, "--bootstrap", help="bootstrap rounds for leaderboard CIs"),
    metric: str | None = typer.Option(None, "--metric", help="rank outcomes of this metric only"),
    title: str = typer.Option("rankroute report", "--title"),
) -> None:
    """Write a self-contained HTML report (leaderboards, ratings, Pareto, routers, load tests)."""
    from rankroute.data.store import OutcomeStore
    from rankroute.report import write_report

    with console.status("building report"), OutcomeStore(store, read_only=True) as db:
        path = write_report(
            db, out, route_evaluations=route_eval, title=title, bootstrap=bootstrap, metric=metric
        )
    console.print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB, opens offline)", highlight=False)
