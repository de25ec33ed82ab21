"""`rankroute route ...`: train, evaluate and apply routers."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rankroute.data.errors import DataError

if TYPE_CHECKING:
    from rankroute.data.matrix import OutcomeMatrix
    from rankroute.route.base import Router

route_app = typer.Typer(help="Train, evaluate and apply routers.", no_args_is_help=True)
console = Console(stderr=True)
HUB_DATASETS = ("routerbench",)


def load_matrix(
    data: Path | None,
    *,
    dataset: str | None = None,
    store: str | None = None,
    run_ids: Sequence[str] | None = None,
    metric: str | None = None,
    price_table: Path | None = None,
    annotator: str | None = None,
) -> OutcomeMatrix:
    """Outcomes from a file or folder in any format the importers read, a named dataset from the hub, or
    the outcome store (what `rankroute eval` and `rankroute data import` wrote)."""
    import pandas as pd

    from rankroute.data.importers import load_outcomes, load_routerbench_from_hub
    from rankroute.data.matrix import OutcomeMatrix
    from rankroute.data.store import OutcomeStore
    from rankroute.route.evaluate import routable_models

    if sum(source is not None for source in (data, dataset, store)) != 1:
        raise DataError("give exactly one of --data PATH, --dataset NAME or --store STORE")
    if run_ids and store is None:
        raise DataError("--run-id picks runs in an outcome store: give --store too")
    if store is not None:
        with OutcomeStore(store, read_only=True) as db:
            prompts, outcomes = db.read_prompts(), db.read_outcomes(with_response=True)
            known_runs = sorted(outcomes["run_id"].unique())
            if run_ids:
                outcomes = outcomes[outcomes["run_id"].isin(run_ids)]
            if outcomes.empty:
                chosen = f" of run(s) {list(run_ids)}" if run_ids else ""
                raise DataError(
                    f"store {db.location} holds no outcomes{chosen}",
                    hint=f"its runs: {known_runs}"
                    if known_runs
                    else "run rankroute eval or data import first",
                )
        if outcomes.duplicated(["prompt_id", "model", "metric"]).any():
            raise DataError(
                "the store holds several outcomes of one model on one prompt (runs with different settings)",
                hint=f"choose the runs to route on with --run-id (repeatable); its runs: {known_runs}",
            )
    else:
        if dataset is not None:
            if dataset not in HUB_DATASETS:
                raise DataError(f"unknown --dataset {dataset!r}; known: {list(HUB_DATASETS)}")
            data = load_routerbench_from_hub()  # a one-line DataError when the hub cannot be reached
        assert data is not None
        if not data.exists():
            raise DataError(f"no such file or folder: {data}", hint="check --data")
        loaded = load_outcomes(data, price_table=price_table, annotator=annotator)
        prompts, outcomes = loaded.prompts, loaded.outcomes
    metrics = sorted(outcomes["metric"].unique())
    if metric is None and len(metrics) > 1 and not outcomes.duplicated(["prompt_id", "model"]).any():
        # e.g. RouteLLM: exact match on MMLU/GSM8K, a 1-10 grade on MT-Bench. A router compares models on
        # the same prompt, so one metric per prompt is all it needs.
        console.print(
            f"note: each prompt has one metric ({', '.join(metrics)}); routing on them", highlight=False
        )
        outcomes = outcomes.assign(metric="per_prompt_metric")
    matrix = OutcomeMatrix.from_frames(prompts, outcomes, metric=metric)
    if matrix.responses is not None:  # missing answers as None, not pandas' NA (which has no truth value)
        answers = matrix.responses.copy()
        answers[pd.isna(answers)] = None
        matrix = dataclasses.replace(matrix, responses=answers)
    usable, dropped = routable_models(matrix)
    if dropped:
        console.print(
            f"note: left out {len(dropped)} model(s) with no known cost or quality: {', '.join(dropped)}"
            " (price them with --price-table)",
            highlight=False,
        )
    return usable


def select_routers(
    models: list[str], names: list[str] | None, seed: int, encoder: str | None = None
) -> dict[str, Router]:
    """The routers named (comma-separated or repeated), or all known ones; unknown names are an error."""
    from rankroute.route.embeddings import make_encoder
    from rankroute.route.evaluate import default_routers

    available = default_routers(models, seed=seed, encoder=make_encoder(encoder))
    if not names:
        return available
    wanted = [n.strip() for name in names for n in name.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise DataError(f"unknown router(s) {unknown}; known: {list(available)}", hint="check --routers")
    return {n: available[n] for n in wanted}


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _fmt(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _vs_zero(row: dict[str, Any]) -> str:
    if row.get("aiq_minus_zero") is None or row["router"] == "zero":
        return "-"
    low, high = row["aiq_minus_zero_ci_low"], row["aiq_minus_zero_ci_high"]
    mark = (
        "[green]+[/]"
        if low is not None and low > 0
        else ("[red]-[/]" if high is not None and high < 0 else "")
    )
    return f"{row['aiq_minus_zero']:+.4f} [{_fmt(low)}, {_fmt(high)}]{mark}"


def _results_table(rows: list[dict[str, Any]]) -> Table:
    two_models = any("apgr" in row for row in rows)
    table = Table(title="routers on held-out prompts (95% bootstrap CI over prompts)")
    for column in ("dataset", "router", "AIQ", "AIQ CI", "AIQ - zero [CI]", "best quality", "n test"):
        table.add_column(column, justify="left" if column in ("dataset", "router") else "right")
    if two_models:
        for column in ("CPT(50%)", "CPT(80%)", "APGR", "APGR CI"):
            table.add_column(column, justify="right")
    for row in rows:
        cells = [
            row["dataset"],
            row["router"],
            _fmt(row["aiq"]),
            f"[{_fmt(row['aiq_ci_low'])}, {_fmt(row['aiq_ci_high'])}]",
            _vs_zero(row),
            _fmt(row["max_quality"], 3),
            str(row["n_test_prompts"]),
        ]
        if two_models:
            cells += [
                _fmt(row.get("cpt50"), 1) + "%",
                _fmt(row.get("cpt80"), 1) + "%",
                _fmt(row.get("apgr"), 3),
                f"[{_fmt(row.get('apgr_ci_low'), 3)}, {_fmt(row.get('apgr_ci_high'), 3)}]",
            ]
        table.add_row(*cells)
    return table


@route_app.command("eval")
def eval_command(
    data: Path | None = typer.Option(None, "--data", help="outcomes file or folder (any importable format)"),
    dataset: str | None = typer.Option(None, "--dataset", help="download a named dataset: routerbench"),
    store: str | None = typer.Option(
        None, "--store", help="or read the outcome store (path or postgresql:// URL)"
    ),
    run_id: list[str] | None = typer.Option(None, "--run-id", help="with --store: route on these runs only"),
    seed: int = typer.Option(0, "--seed", help="seed of the split, the random router and the bootstrap"),
    json_out: Path | None = typer.Option(
        None, "--json", help="write the rows (one per dataset x router) here"
    ),
    out: Path | None = typer.Option(
        None, "--out", help="run folder: rows, curves, calibration and a PNG plot"
    ),
    routers: list[str] | None = typer.Option(None, "--routers", help="router names, comma-separated"),
    bootstrap: int = typer.Option(200, "--bootstrap", min=10, help="bootstrap resamples of test prompts"),
    test_size: float = typer.Option(0.3, "--test-size", help="share of each dataset's prompts held out"),
    metric: str | None = typer.Option(None, "--metric", help="which metric when the data has several"),
    price_table: Path | None = typer.Option(None, "--price-table", help="YAML/CSV prices for cost-less data"),
    annotator: str | None = typer.Option(
        None, "--annotator", help="judge to use in judged data (AlpacaEval)"
    ),
    quality_share: float = typer.Option(
        0.95, "--target-quality-share", help="calibrate lambda to this share of the best model's quality"
    ),
    encoder: str | None = typer.Option(
        None, "--encoder", help="prompt embeddings of the learned routers: static (default), minilm, tfidf"
    ),
    repeats: int = typer.Option(
        1,
        "--repeats",
        min=1,
        help="also evaluate on the splits of seeds seed+1 .. seed+repeats-1 and report AIQ - Zero over all",
    ),
) -> None:
    """Train every router on a seeded split by prompt and score it on the held-out prompts."""
    from rankroute.route.calibrate import (
        CostQualityCurve,
        choose_willingness_to_pay,
        held_out_from_evaluation,
    )
    from rankroute.route.evaluate import evaluate_routers
    from rankroute.route.split import split_by_prompt

    matrix = load_matrix(
        data,
        dataset=dataset,
        store=store,
        run_ids=run_id,
        metric=metric,
        price_table=price_table,
        annotator=annotator,
    )
    chosen = select_routers(list(matrix.models), routers, seed, encoder)
    complete = matrix.complete_rows()
    split = split_by_prompt(complete, test_size=test_size, seed=seed) if complete.n_prompts >= 2 else None
    with _progress() as progress:
        task = progress.add_task("fit + sweep routers", total=len(chosen))
        evaluation = evaluate_routers(
            matrix,
            chosen,
            test_size=test_size,
            seed=seed,
            n_bootstrap=bootstrap,
            split=split,
            progress=lambda name: progress.update(task, advance=1, description=f"fit + sweep: {name}"),
        )
    stdout = Console()
    if not stdout.is_terminal:
        stdout = Console(width=200)  # files and pipes get the whole table, unwrapped
    stdout.print(_results_table(evaluation.rows))
    console.print(
        "cost ranges for AIQ (USD/prompt): "
        + ", ".join(f"{d} [{lo:.3g}, {hi:.3g}]" for d, (lo, hi) in evaluation.cost_ranges.items())
        + f"; lambda grid: {evaluation.grid.size} log-spaced points"
        + f" {evaluation.grid[0]:.3g} .. {evaluation.grid[-1]:.3g}",
        highlight=False,
    )
    repeated = []
    if repeats > 1:
        fresh = functools.partial(select_routers, list(matrix.models), routers, encoder=encoder)
        repeated = _repeated_splits(matrix, fresh, evaluation.rows, seed, repeats, test_size)
    if repeated:
        stdout.print(_repeated_table(repeated, seed))
        _merge_repeated(evaluation.rows, repeated)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(evaluation.rows, indent=1))
    if out is not None:
        assert split is not None
        train = complete.subset(split.train)
        calibration = []
        for name, router in chosen.items():
            if name.startswith("single:") or name in ("oracle", "zero"):
                continue
            curve = CostQualityCurve.measure(router, train, evaluation.grid)
            picked = choose_willingness_to_pay(curve, quality_share=quality_share)
            calibration.append({"router": name, **held_out_from_evaluation(evaluation, name, picked)})
        from rankroute.route.plot import plot_curves

        out.mkdir(parents=True, exist_ok=True)
        report = evaluation.to_json()
        report["calibration"] = calibration
        (out / "evaluation.json").write_text(json.dumps(report, indent=1))
        (out / "rows.json").write_text(json.dumps(evaluation.rows, indent=1))
        plot_curves(evaluation, out / "curves.png")
        console.print(f"run folder: {out} (evaluation.json, rows.json, curves.png)", highlight=False)


def _repeated_splits(
    matrix: OutcomeMatrix,
    make_routers: Callable[[int], dict[str, Router]],
    first_rows: list[dict[str, Any]],
    seed: int,
    repeats: int,
    test_size: float,
) -> list[dict[str, Any]]:
    """Fresh routers fitted on the splits of the next seeds (no bootstrap: the spread is over splits)."""
    from rankroute.route.evaluate import evaluate_routers, summarise_splits

    split_rows = [first_rows]
    with _progress() as progress:
        task = progress.add_task("repeated splits", total=repeats - 1)
        for offset in range(1, repeats):
            split_seed = seed + offset
            progress.update(task, description=f"split seed {split_seed}")
            fitted = evaluate_routers(
                matrix, make_routers(split_seed), test_size=test_size, seed=split_seed, n_bootstrap=0
            )
            split_rows.append(fitted.rows)
            progress.update(task, advance=1)
    return summarise_splits(split_rows, test_size=test_size)


def _repeated_table(summary: list[dict[str, Any]], seed: int) -> Table:
    n = summary[0]["n_splits"]
    table = Table(
        title=f"AIQ - zero over {n} seeded splits (seeds {seed}..{seed + n - 1}; "
        "95% corrected resampled t-interval)"
    )
    for column in ("dataset", "router", "mean AIQ", "mean AIQ - zero [CI]", "splits ahead of zero"):
        table.add_column(column, justify="left" if column in ("dataset", "router") else "right")
    for row in summary:
        if row["router"] == "zero" or row["router"].startswith("single:"):  # singles: in the JSON rows
            continue
        low, high = row["aiq_minus_zero_ci_low"], row["aiq_minus_zero_ci_high"]
        mark = "[green]+[/]" if low is not None and low > 0 else ""
        table.add_row(
            row["dataset"],
            row["router"],
            _fmt(row["mean_aiq"]),
            f"{row['mean_aiq_minus_zero']:+.4f} [{_fmt(low)}, {_fmt(high)}]{mark}",
            f"{row['splits_ahead_of_zero']}/{n}",
        )
    return table


def _merge_repeated(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> None:
    """Each row of the first split gains its (dataset, router)'s figures over all splits."""
    by_key = {(r["dataset"], r["router"]): r for r in summary}
    for row in rows:
        found = by_key.get((row["dataset"], row["router"]))
        if found is not None:
            row["repeated_splits"] = {k: v for k, v in found.items() if k not in ("dataset", "router")}


def _calibration_path(router_file: Path) -> Path:
    return router_file.with_name(router_file.name + ".calibration.json")


@route_app.command("train")
def train_command(
    data: Path | None = typer.Option(None, "--data", help="outcomes file or folder (any importable format)"),
    store: str | None = typer.Option(
        None, "--store", help="or read the outcome store (path or postgresql:// URL)"
    ),
    run_id: list[str] | None = typer.Option(None, "--run-id", help="with --store: route on these runs only"),
    router_name: str = typer.Option(..., "--router", help="router name (see `route eval --routers`)"),
    out: Path = typer.Option(..., "--out", help="where to save the fitted router"),
    seed: int = typer.Option(0, "--seed"),
    calibration_size: float = typer.Option(
        0.2, "--calibration-size", help="share of prompts held out to measure the cost-quality curve"
    ),
    metric: str | None = typer.Option(None, "--metric"),
    price_table: Path | None = typer.Option(None, "--price-table"),
    annotator: str | None = typer.Option(None, "--annotator"),
    encoder: str | None = typer.Option(
        None, "--encoder", help="prompt embeddings of the learned routers: static (default), minilm, tfidf"
    ),
) -> None:
    """Fit one router and save it, with its cost-quality curve on held-out calibration prompts (--budget)."""
    from rankroute.route.calibrate import CostQualityCurve
    from rankroute.route.split import split_by_prompt

    matrix = load_matrix(
        data, store=store, run_ids=run_id, metric=metric, price_table=price_table, annotator=annotator
    )
    if router_name == "oracle":
        raise DataError("the oracle router reads true outcomes and cannot be trained for new prompts")
    router = select_routers(list(matrix.models), [router_name], seed, encoder)[router_name]
    complete = matrix.complete_rows()
    fit_part, calibration_part = split_by_prompt(complete, test_size=calibration_size, seed=seed).apply(
        complete
    )
    with _progress() as progress:
        task = progress.add_task(f"fit {router_name} on {fit_part.n_prompts} prompts", total=2)
        router.fit(fit_part)
        progress.update(task, advance=1, description=f"calibrate on {calibration_part.n_prompts} prompts")
        curve = CostQualityCurve.measure(router, calibration_part)
        progress.update(task, advance=1)
    from rankroute.route.persist import save_router

    out.parent.mkdir(parents=True, exist_ok=True)
    save_router(router, out)
    _calibration_path(out).write_text(json.dumps({"router": router_name, "curve": curve.to_json()}, indent=1))
    console.print(f"saved {router_name} to {out} (+ {_calibration_path(out).name})", highlight=False)


def _read_prompts(path: Path) -> list[str]:
    if not path.exists():
        raise DataError(f"no such prompts file: {path}", hint="check --prompts")
    texts: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON: {exc.msg}", source=str(path), row=number) from exc
            text = record.get("prompt", record.get("text")) if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise DataError("needs a string field 'prompt' or 'text'", source=str(path), row=number)
            texts.append(text)
        else:
            texts.append(line)
    if not texts:
        raise DataError("no prompts in the file", source=str(path))
    return texts


@route_app.command("predict")
def predict_command(
    router_file: Path = typer.Option(..., "--router", help="a router saved by `route train`"),
    prompt: str | None = typer.Option(None, "--prompt", help="one prompt text"),
    prompts: Path | None = typer.Option(None, "--prompts", help="text file (one per line) or .jsonl"),
    willingness_to_pay: float | None = typer.Option(
        None, "--willingness-to-pay", help="USD per unit of quality the caller will pay"
    ),
    budget: float | None = typer.Option(None, "--budget", help="target USD per 1k prompts (calibrated)"),
) -> None:
    """Print the chosen model for each prompt, one JSON object per line."""
    import numpy as np

    from rankroute.route.calibrate import CostQualityCurve, choose_willingness_to_pay

    if (prompt is None) == (prompts is None):
        raise DataError("give exactly one of --prompt TEXT or --prompts FILE")
    if (willingness_to_pay is None) == (budget is None):
        raise DataError("give exactly one of --willingness-to-pay X or --budget USD_PER_1K")
    if not router_file.exists():
        raise DataError(f"no such router file: {router_file}", hint="train one with `rankroute route train`")
    from rankroute.route.persist import load_router

    router = load_router(router_file)
    if prompt is not None:
        texts = [prompt]
    else:
        assert prompts is not None
        texts = _read_prompts(prompts)
    if budget is not None:
        sidecar = _calibration_path(router_file)
        if not sidecar.exists():
            raise DataError(f"--budget needs the calibration file {sidecar} written by `route train`")
        curve = CostQualityCurve(**json.loads(sidecar.read_text())["curve"])
        picked = choose_willingness_to_pay(curve, budget_per_1k=budget)
        if not picked.met:
            console.print(
                f"[yellow]warning:[/] no setting stays within {budget} USD/1k on calibration prompts; "
                f"using the cheapest ({picked.cost_per_1k:.4g} USD/1k)",
                highlight=False,
            )
        willingness_to_pay = picked.willingness_to_pay
    assert willingness_to_pay is not None
    models = router.route(texts, willingness_to_pay)
    for text, model in zip(texts, np.asarray(models).tolist(), strict=True):
        typer.echo(json.dumps({"prompt": text, "model": model, "willingness_to_pay": willingness_to_pay}))
