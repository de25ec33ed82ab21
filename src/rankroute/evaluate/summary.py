"""Per model x task figures of a run, read back from the store (so a resumed run reports everything)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd
from rich.table import Table

from rankroute.data.store import OutcomeStore

SUMMARY_COLUMNS = [
    "model",
    "task",
    "n",
    "quality",
    "cost_usd",
    "latency_p50_ms",
    "latency_p95_ms",
    "tokens_per_s",
    "peak_rss_mb",
]


def _extra_values(frame: pd.DataFrame, key: str) -> pd.Series:
    def pick(raw: object) -> float:
        if not isinstance(raw, str) or not raw:
            return float("nan")
        value = json.loads(raw).get(key)
        return float(value) if isinstance(value, int | float) else float("nan")

    return frame["extra"].map(pick) if "extra" in frame else pd.Series(np.nan, index=frame.index)


def summarize(store: OutcomeStore, config_keys: Mapping[tuple[str, str], str]) -> pd.DataFrame:
    """One row per (model, task) of the config keys: mean quality, total cost, latency, speed, memory."""
    models = sorted({model for model, _ in config_keys})
    if not models:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    return _summary_rows(store.read_outcomes(models=models), config_keys)


def summarize_store(store: OutcomeStore) -> pd.DataFrame:
    """The summary of everything a store holds: one row per (model, task, config) it has outcomes for."""
    outcomes = store.read_outcomes()
    if outcomes.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    tasks = outcomes["prompt_id"].str.split("/", n=1).str[0]
    keys = {(m, t): k for m, t, k in zip(outcomes["model"], tasks, outcomes["config_key"], strict=True)}
    return _summary_rows(outcomes, keys)


def _summary_rows(outcomes: pd.DataFrame, config_keys: Mapping[tuple[str, str], str]) -> pd.DataFrame:
    rows = []
    for (model, task), key in sorted(config_keys.items()):
        part = outcomes[(outcomes["model"] == model) & (outcomes["config_key"] == key)]
        if part.empty:
            continue
        latency = part["latency_ms"].dropna()
        speed = _extra_values(part, "tokens_per_s").dropna()
        rss = _extra_values(part, "peak_rss_mb").dropna()
        cost = part["cost_usd"].dropna()
        rows.append(
            {
                "model": model,
                "task": task,
                "n": len(part),
                "quality": float(part["quality"].mean()),
                "cost_usd": float(cost.sum()) if len(cost) else float("nan"),
                "latency_p50_ms": float(latency.quantile(0.5)) if len(latency) else float("nan"),
                "latency_p95_ms": float(latency.quantile(0.95)) if len(latency) else float("nan"),
                "tokens_per_s": float(speed.median()) if len(speed) else float("nan"),
                "peak_rss_mb": float(rss.max()) if len(rss) else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _fmt(value: object, digits: int) -> str:
    if isinstance(value, float):
        return "-" if np.isnan(value) else f"{value:,.{digits}f}"
    return str(value)


def summary_table(summary: pd.DataFrame, title: str = "evaluation") -> Table:
    """The summary as a rich table."""
    table = Table(title=title)
    digits = {"quality": 3, "cost_usd": 6, "latency_p50_ms": 0, "latency_p95_ms": 0, "tokens_per_s": 1}
    for column in SUMMARY_COLUMNS:
        table.add_column(column, justify="left" if column in ("model", "task") else "right")
    for row in summary.to_dict(orient="records"):
        table.add_row(*(_fmt(row[c], digits.get(c, 0)) for c in SUMMARY_COLUMNS))
    return table


def main(argv: list[str] | None = None) -> None:
    """`python -m rankroute.evaluate.summary STORE...`: the summary table of one or more stores."""
    import sys

    from rich.console import Console

    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        raise SystemExit("usage: python -m rankroute.evaluate.summary STORE.duckdb [STORE.duckdb ...]")
    frames = []
    for path in paths:
        with OutcomeStore(path) as store:
            frames.append(summarize_store(store))
    summary = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SUMMARY_COLUMNS)
    Console().print(summary_table(summary, title="outcomes by model x task"))


if __name__ == "__main__":
    main()
