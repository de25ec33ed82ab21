"""PNG figures for rankings: estimates with CI whiskers, the cost x quality Pareto front, win rates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rankroute.rank.choose import pareto_front

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend, imported on first use: it costs every CLI command
    about a second and a half of start-up otherwise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_intervals(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    value: str = "rating",
    low: str = "ci_low",
    high: str = "ci_high",
    title: str = "",
    top: int | None = 40,
) -> Path:
    """Horizontal dot-and-whisker chart, best at the top."""
    table = frame.sort_values(value, ascending=False)
    if top is not None:
        table = table.head(top)
    table = table.iloc[::-1]
    figure, axes = _pyplot().subplots(figsize=(8, max(2.5, 0.28 * len(table) + 1)))
    centre = table[value].to_numpy(dtype=float)
    errors = np.vstack(
        [centre - table[low].to_numpy(dtype=float), table[high].to_numpy(dtype=float) - centre]
    )
    axes.errorbar(centre, np.arange(len(table)), xerr=np.abs(errors), fmt="o", capsize=3, color="tab:blue")
    axes.set_yticks(np.arange(len(table)), table["model"].astype(str).tolist(), fontsize=8)
    axes.set_xlabel(value)
    axes.set_title(title)
    axes.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def plot_pareto(
    frame: pd.DataFrame, path: str | Path, *, x: str = "usd_per_1k", y: str = "quality", title: str = ""
) -> Path:
    """Scatter of models on x (log scale when it spans >10x) and y, the non-dominated front drawn."""
    table = frame.dropna(subset=[x, y])
    front = table[pareto_front(table, x=x, y=y)].sort_values(x)
    figure, axes = _pyplot().subplots(figsize=(8, 5.5))
    axes.scatter(table[x], table[y], color="tab:gray")
    axes.plot(front[x], front[y], "-o", color="tab:red", label="Pareto front")
    for _, row in table.iterrows():
        axes.annotate(
            str(row["model"]), (row[x], row[y]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    positive = table[x][table[x] > 0]
    if len(positive) and positive.max() / positive.min() > 10:
        axes.set_xscale("log")
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    axes.set_title(title)
    axes.legend()
    axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_win_matrix(matrix: pd.DataFrame, path: str | Path, *, title: str = "", top: int | None = 25) -> Path:
    """Heat map of row-beats-column rates (rows/columns in the given order, usually best first)."""
    table = matrix.iloc[:top, :top] if top is not None else matrix
    figure, axes = _pyplot().subplots(figsize=(0.4 * len(table) + 3, 0.4 * len(table) + 2))
    colours = _pyplot().colormaps["RdBu"].with_extremes(bad="lightgray")  # gray: the pair never met
    image = axes.imshow(np.ma.masked_invalid(table.to_numpy(dtype=float)), cmap=colours, vmin=0, vmax=1)
    axes.set_xticks(
        np.arange(len(table.columns)), table.columns.astype(str).tolist(), rotation=90, fontsize=7
    )
    axes.set_yticks(np.arange(len(table.index)), table.index.astype(str).tolist(), fontsize=7)
    figure.colorbar(image, ax=axes, label="row model wins")
    axes.set_title(title)
    return _save(figure, path)


def _save(figure: Figure, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    _pyplot().close(figure)
    return target
