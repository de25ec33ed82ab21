"""`rankroute rank ...` and `rankroute advise`: leaderboards, ratings, judge win rates, model choice."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from rankroute.data.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from rankroute.rank import BradleyTerry, PairCounts, Ratings

rank_app = typer.Typer(
    help="Leaderboards with confidence intervals, pairwise ratings, Pareto fronts.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)

StoreOption = typer.Option(
    None, "--store", help="DuckDB file or postgresql:// URL (default: $RANKROUTE_STORE or ~/.rankroute)"
)


@contextmanager
def _shown_warnings() -> Iterator[None]:
    """Print the estimators' warnings (disconnected graph, unbounded ratings) as one line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        err_console.print(f"[yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe rows: NaN becomes null, numpy scalars plain Python."""
    return [{str(k): _clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _write_json(payload: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    err_console.print(f"wrote {path}")


def _format(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _with_intervals(frame: pd.DataFrame, low: str, high: str, digits: int = 3) -> pd.DataFrame:
    """Add display columns "95% CI" (low-high) and "rank range" (rank_low-rank_high) where present."""
    import pandas as pd

    shown = frame.copy()
    if low in shown and high in shown:
        shown["95% CI"] = [
            f"{a:.{digits}f}-{b:.{digits}f}" if pd.notna(a) and pd.notna(b) else "-"
            for a, b in zip(shown[low], shown[high], strict=True)
        ]
    if "rank_low" in shown and "rank_high" in shown:
        shown["rank range"] = [
            f"{int(a)}-{int(b)}" if pd.notna(a) and pd.notna(b) else "-"
            for a, b in zip(shown["rank_low"], shown["rank_high"], strict=True)
        ]
    if "rank" in shown:
        shown["rank"] = [str(int(r)) if pd.notna(r) else "-" for r in shown["rank"]]
    return shown


def _print_table(frame: pd.DataFrame, title: str, columns: dict[str, int]) -> None:
    """Rich table of the named columns (value = decimals shown); absent columns are skipped."""
    table = Table(title=title)
    shown = [c for c in columns if c in frame.columns]
    for column in shown:
        if column in ("model", "task", "reason"):
            table.add_column(column, justify="left", overflow="fold", min_width=12)
        else:
            table.add_column(column, justify="right")
    for row in frame[shown].itertuples(index=False):
        table.add_row(*(_format(v, columns[c]) for v, c in zip(row, shown, strict=True)))
    console.print(table)


def _parse_anchor(anchor: str | None) -> tuple[str, float] | None:
    if anchor is None:
        return None
    model, sep, rating = anchor.rpartition("=")
    try:
        value = float(rating)
    except ValueError:
        value = math.nan
    if not sep or not model or not math.isfinite(value):
        raise DataError(
            f"--anchor {anchor!r} is not MODEL=RATING", hint="e.g. --anchor mixtral-8x7b-instruct-v0.1=1114"
        )
    return model, value


@rank_app.command("leaderboard")
def leaderboard(
    store: str | None = StoreOption,
    task: list[str] | None = typer.Option(None, "--task", help="limit to these tasks (prompt datasets)"),
    metric: str | None = typer.Option(None, "--metric", help="use only outcomes of this metric"),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="prompt-resampling rounds for CIs"),
    seed: int = typer.Option(0, "--seed"),
    json_out: Path | None = typer.Option(None, "--json", help="write tasks and overall tables as JSON"),
    plot: Path | None = typer.Option(None, "--plot", help="PNG: overall (or single task) scores with CIs"),
    pareto_plot: Path | None = typer.Option(None, "--pareto-plot", help="PNG: cost x quality Pareto front"),
) -> None:
    """Per-task and overall leaderboards with prompt-clustered bootstrap CIs and rank intervals."""
    from rankroute.data import OutcomeStore
    from rankroute.rank import leaderboard_from_store
    from rankroute.rank.plots import plot_intervals, plot_pareto

    with OutcomeStore(store, read_only=True) as db, console.status(f"bootstrapping {bootstrap} rounds"):
        board = leaderboard_from_store(db, datasets=task, metric=metric, bootstrap=bootstrap, seed=seed)
    task_columns = {
        "model": 0,
        "quality": 3,
        "95% CI": 0,
        "rank": 0,
        "rank range": 0,
        "n_prompts": 0,
        "usd_per_1k": 3,
        "latency_p95_ms": 0,
        "tokens_per_s": 1,
    }
    for name, rows in board.tasks.groupby("task", sort=True):
        _print_table(_with_intervals(rows, "ci_low", "ci_high"), f"task {name}", task_columns)
    overall_columns = {
        "model": 0,
        "mean_normalised_score": 3,
        "95% CI": 0,
        "mean_win_rate": 3,
        "rank": 0,
        "rank range": 0,
        "usd_per_1k": 3,
    }
    _print_table(
        _with_intervals(board.overall, "score_ci_low", "score_ci_high"),
        "overall (overlapping rank ranges share a rank)",
        overall_columns,
    )
    if json_out is not None:
        _write_json({"tasks": records(board.tasks), "overall": records(board.overall)}, json_out)
    single = board.tasks["task"].nunique() == 1
    if plot is not None:
        if single:
            plot_intervals(board.tasks, plot, value="quality", title=f"task {board.tasks['task'].iloc[0]}")
        else:
            plot_intervals(
                board.overall,
                plot,
                value="mean_normalised_score",
                low="score_ci_low",
                high="score_ci_high",
                title="mean normalised score over tasks",
            )
        err_console.print(f"wrote {plot}")
    if pareto_plot is not None:
        source = board.tasks if single else board.overall.rename(columns={"mean_normalised_score": "quality"})
        plot_pareto(source, pareto_plot, title="cost x quality")
        err_console.print(f"wrote {pareto_plot}")


@rank_app.command("pareto")
def pareto(
    store: str | None = StoreOption,
    task: str = typer.Option(..., "--task", help="the task whose quality is traded off"),
    against: str = typer.Option("usd_per_1k", "--against", help="usd_per_1k or latency_p95_ms"),
    plot: Path | None = typer.Option(None, "--plot", help="PNG scatter with the front drawn"),
) -> None:
    """Models not dominated on cost (or p95 latency) x quality for one task."""
    from rankroute.data import OutcomeStore
    from rankroute.rank import leaderboard_from_store
    from rankroute.rank.choose import pareto_front
    from rankroute.rank.plots import plot_pareto

    if against not in ("usd_per_1k", "latency_p95_ms"):
        raise DataError(f"--against {against!r} must be usd_per_1k or latency_p95_ms")
    with OutcomeStore(store, read_only=True) as db:
        board = leaderboard_from_store(db, datasets=[task], bootstrap=0)
    rows = board.tasks.copy()
    rows["pareto"] = pareto_front(rows, x=against)
    _print_table(
        rows.sort_values(against),
        f"task {task}: Pareto front on {against}",
        {"model": 0, "quality": 3, against: 3, "pareto": 0},
    )
    if plot is not None:
        plot_pareto(rows, plot, x=against, title=f"{task}: {against} x quality")
        err_console.print(f"wrote {plot}")


@rank_app.command("pairwise")
def pairwise(
    battles: Path | None = typer.Option(
        None, "--battles", help="battles (CSV/JSONL/Parquet: model_a, model_b, winner) or Arena pair counts"
    ),
    store: str | None = typer.Option(None, "--store", help="read battles from this store instead of a file"),
    judge: str | None = typer.Option(None, "--judge", help="with --store: only this judge's battles"),
    from_outcomes: bool = typer.Option(
        False, "--from-outcomes", help="with --store: battles from per-prompt outcomes (higher quality wins)"
    ),
    task: list[str] | None = typer.Option(None, "--task", help="with --from-outcomes: only these tasks"),
    anchor: str | None = typer.Option(None, "--anchor", help="MODEL=RATING pins one model's rating"),
    bootstrap: int = typer.Option(100, "--bootstrap", min=0, help="bootstrap rounds for the CIs"),
    resample: str = typer.Option("battles", "--resample", help="battles, or prompts (needs prompt_id)"),
    seed: int = typer.Option(0, "--seed"),
    scale: float = typer.Option(400.0, "--scale"),
    base: float = typer.Option(10.0, "--base"),
    initial: float = typer.Option(1000.0, "--initial"),
    elo_k: float | None = typer.Option(
        None, "--online-elo-k", help="also show online Elo with this K (file order)"
    ),
    length_control: bool = typer.Option(
        False, "--style-control", help="control for answer length (needs length_a/b or response_a/b columns)"
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="write rows (model, rating, ci_low, ci_high, rank)"
    ),
    plot: Path | None = typer.Option(None, "--plot", help="PNG: ratings with CI whiskers"),
    heatmap: Path | None = typer.Option(None, "--heatmap", help="PNG: observed win-rate heat map"),
    top: int = typer.Option(30, "--top", help="rows shown in the terminal table"),
) -> None:
    """Bradley-Terry ratings (Elo scale) with bootstrap CIs from pairwise preferences."""
    from rankroute.data import OutcomeStore
    from rankroute.data.matrix import OutcomeMatrix
    from rankroute.rank import (
        BradleyTerry,
        PairCounts,
        battles_from_matrix,
        online_elo,
        pair_counts_from_battles,
        read_battles_file,
        win_rate_matrix,
    )
    from rankroute.rank.plots import plot_intervals, plot_win_matrix

    data: pd.DataFrame | PairCounts
    if battles is not None:
        data = read_battles_file(battles)
    elif store is not None and from_outcomes:
        with OutcomeStore(store, read_only=True) as db:
            data = battles_from_matrix(OutcomeMatrix.from_store(db, datasets=task))
    elif store is not None:
        with OutcomeStore(store, read_only=True) as db:
            data = db.read_battles(judge=judge)
        if data.empty:
            raise DataError(
                "the store holds no battles", hint="import some with `rankroute rank import-battles`"
            )
    else:
        raise DataError("pass --battles FILE or --store PATH")
    model = BradleyTerry(
        scale=scale,
        base=base,
        initial=initial,
        anchor=_parse_anchor(anchor),
        bootstrap=bootstrap,
        resample=resample,
        seed=seed,
    )
    if length_control:
        ratings = _style_controlled(battles, model)
    else:
        with _shown_warnings(), console.status(f"fitting Bradley-Terry with {bootstrap} bootstrap rounds"):
            ratings = model.fit(data)
    frame = ratings.to_frame()
    if elo_k is not None:
        if isinstance(data, PairCounts):
            raise DataError("online Elo needs battles in order; pair counts have no order")
        frame = frame.join(online_elo(data, k=elo_k, scale=scale, base=base, initial=initial), on="model")
    columns = {
        "model": 0,
        "rating": 1,
        "95% CI": 0,
        "rank": 0,
        "rank_ub": 0,
        "rank range": 0,
        "battles": 0,
        "elo": 1,
    }
    if frame["component"].nunique() > 1:
        columns["component"] = 0
    _print_table(
        _with_intervals(frame.head(top), "ci_low", "ci_high", 1),
        f"Bradley-Terry ratings ({ratings.method}, {len(frame)} models)",
        columns,
    )
    if json_out is not None:
        _write_json(records(frame), json_out)
    if plot is not None:
        plot_intervals(frame, plot, title="Bradley-Terry rating, 95% CI")
        err_console.print(f"wrote {plot}")
    if heatmap is not None:
        counts = data if isinstance(data, PairCounts) else pair_counts_from_battles(data)
        order = frame["model"].tolist()
        plot_win_matrix(win_rate_matrix(counts).loc[order, order], heatmap, title="observed win rate")
        err_console.print(f"wrote {heatmap}")


def _style_controlled(battles: Path | None, model: BradleyTerry) -> Ratings:
    """Length-controlled ratings from a battles file (point estimates: no bootstrap CIs)."""
    from rankroute.rank import EloScale, style_control
    from rankroute.rank.pairs import read_table

    if battles is None:
        raise DataError("--style-control needs --battles FILE with per-battle lengths or responses")
    fitted = style_control(read_table(battles), scale=EloScale(model.scale, model.base, model.initial))
    ratings = fitted.ratings
    if model.anchor is not None:
        ratings.rating += model.anchor[1] - ratings.rating[ratings.index(model.anchor[0])]
    err_console.print(
        f"length coefficient {fitted.coefficients['length']:.3f} (> 0: judges favour longer answers)"
    )
    return ratings


@rank_app.command("import-battles")
def import_battles(
    path: Path = typer.Argument(..., help="battles file (CSV/JSONL/Parquet: model_a, model_b, winner)"),
    store: str | None = StoreOption,
    judge: str | None = typer.Option(None, "--judge", help="label these battles with a judge name"),
) -> None:
    """Write a battles file into the store (one transaction; nothing written on any bad row)."""
    import pandas as pd

    from rankroute.data import OutcomeStore
    from rankroute.rank import PairCounts, normalise_battles, read_battles_file

    data = read_battles_file(path)
    if isinstance(data, PairCounts):
        frame = data.to_frame()
        parts = [
            pd.DataFrame(
                {"model_a": frame["model_a"], "model_b": frame["model_b"], "winner": w, "count": frame[c]}
            )
            for w, c in (("model_a", "wins_a"), ("model_b", "wins_b"), ("tie", "ties"))
        ]
        battles = pd.concat(parts, ignore_index=True)
        battles = normalise_battles(battles[battles["count"] > 0].astype({"count": "int64"}), str(path))
    else:
        battles = data
    if judge is not None:
        battles = battles.assign(judge=judge)
    with OutcomeStore(store) as db:
        written = db.write_battles(battles, str(path))
    console.print(f"wrote {written:,} battle rows ({int(battles['count'].sum()):,} battles) to {db.location}")


@rank_app.command("judge")
def judge_win_rates(
    judgments: Path = typer.Option(..., "--judgments", help="AlpacaEval-style judgments.parquet"),
    outputs: Path = typer.Option(..., "--outputs", help="outputs with prompt_id, model, output_chars"),
    baseline: str = typer.Option(..., "--baseline", help="the model every judgment compares against"),
    annotator: str | None = typer.Option(None, "--annotator", help="judge configuration to use"),
    json_out: Path | None = typer.Option(None, "--json"),
) -> None:
    """Win rate against a baseline and AlpacaEval's length-controlled win rate."""
    import pandas as pd

    from rankroute.rank import length_controlled_win_rates

    judged = pd.read_parquet(judgments)
    lengths = pd.read_parquet(outputs, columns=["prompt_id", "model", "output_chars"])
    with console.status("fitting length-controlled GLMs"):
        table = length_controlled_win_rates(judged, lengths, baseline=baseline, annotator=annotator)
    _print_table(
        table,
        f"win rate vs {baseline} (%)",
        {"model": 0, "win_rate": 2, "lc_win_rate": 2, "length_coef": 2, "n": 0},
    )
    if json_out is not None:
        _write_json(records(table), json_out)


def advise_command(
    store: str | None = StoreOption,
    task: str | None = typer.Option(None, "--task", help="rank on this task (default: all tasks)"),
    min_quality: float | None = typer.Option(None, "--min-quality", help="minimum mean quality on --task"),
    max_usd_per_1k: float | None = typer.Option(None, "--max-usd-per-1k", help="USD per 1,000 requests"),
    max_p95_ms: float | None = typer.Option(None, "--max-p95-ms", help="p95 latency in ms"),
    hosted: bool | None = typer.Option(
        None, "--hosted/--self-served", help="hosted APIs or self-served only"
    ),
    max_params_b: float | None = typer.Option(None, "--max-params-b", help="max parameters (billions)"),
    max_size_tier: str | None = typer.Option(
        None, "--max-size-tier", help="tiny, small, medium, large, frontier"
    ),
    reasoning: bool | None = typer.Option(None, "--reasoning/--no-reasoning"),
    weight_quality: float = typer.Option(1.0, "--weight-quality"),
    weight_cost: float = typer.Option(0.0, "--weight-cost"),
    weight_latency: float = typer.Option(0.0, "--weight-latency"),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0),
    json_out: Path | None = typer.Option(None, "--json"),
) -> None:
    """Which models meet your constraints, best first, with evidence; and why the others do not."""
    from rankroute.data import OutcomeStore
    from rankroute.rank import leaderboard_from_store
    from rankroute.rank.choose import AdviceConstraints, advise

    try:
        constraints = AdviceConstraints(
            task=task,
            min_quality=min_quality,
            max_usd_per_1k=max_usd_per_1k,
            max_p95_latency_ms=max_p95_ms,
            hosted=hosted,
            max_params_b=max_params_b,
            max_size_tier=max_size_tier,
            reasoning=reasoning,
            weights={"quality": weight_quality, "usd_per_1k": weight_cost, "latency_p95_ms": weight_latency},
        )
    except ValueError as exc:
        raise DataError(
            f"bad constraint: {exc.errors()[0]['msg'] if hasattr(exc, 'errors') else exc}"
        ) from None
    with OutcomeStore(store, read_only=True) as db, console.status("building the leaderboard"):
        board = leaderboard_from_store(db, bootstrap=bootstrap)
        cards = db.read_models()
    advice = advise(board, cards, constraints)
    where = f"task {task}" if task else "all tasks (mean normalised score)"
    _print_table(
        _with_intervals(advice.qualifying, "ci_low", "ci_high"),
        f"qualifying models on {where}, best first",
        {
            "model": 0,
            "quality": 3,
            "95% CI": 0,
            "usd_per_1k": 3,
            "latency_p95_ms": 0,
            "score": 3,
            "pareto": 0,
        },
    )
    _print_table(advice.excluded, "excluded", {"model": 0, "reason": 0})
    if json_out is not None:
        _write_json(
            {"qualifying": records(advice.qualifying), "excluded": records(advice.excluded)}, json_out
        )
