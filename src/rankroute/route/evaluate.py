"""Evaluate routers on held-out prompts the way RouterBench and RouteLLM do, with bootstrap intervals.

Every router is fitted on the training prompts of a seeded split by prompt and swept over one fixed,
log-spaced grid of willingness to pay (lambda) on the test prompts. At each lambda its realised cost per
prompt is the sum of the true costs of every model it called (router.calls) and its quality the true quality
of the answer it returned. From those points come, per dataset and over `all`, the non-decreasing convex hull
and AIQ over a cost range shared by all routers (RouterBench), and, with two models, CPT(50 %), CPT(80 %)
and APGR (RouteLLM). Confidence intervals resample test PROMPTS: each router's per-prompt decisions at every
lambda are computed once, and each bootstrap replicate only re-weights them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from rankroute.data.errors import DataError
from rankroute.data.matrix import OutcomeMatrix
from rankroute.route.base import Router
from rankroute.route.baselines import OracleRouter, RandomRouter, SingleModelRouter, ZeroRouter
from rankroute.route.curves import apgr, cpt, hull_aiq, non_decreasing_convex_hull
from rankroute.route.embeddings import PromptEncoder
from rankroute.route.split import PromptSplit, assert_disjoint, split_by_prompt

ALL_DATASETS = "all"
Progress = Callable[[str], None]
"""Called with a short description after each unit of work (a router fitted or swept)."""


def willingness_grid(outcomes: OutcomeMatrix, n_points: int = 49) -> np.ndarray:
    """Log-spaced lambdas from "always the cheapest model" to "always the best", from the data's cost scale.

    A router maximises quality - cost / lambda, and quality lies in [0, 1]: below a tenth of the smallest
    positive model mean cost no quality gain is worth any extra cost; above 1,000x the largest single-call
    cost, a quality gain of 0.001 outweighs every cost difference.
    """
    cost = outcomes.cost[np.isfinite(outcomes.cost)]
    positive = cost[cost > 0]
    if positive.size == 0:
        raise DataError("every known cost is zero or missing: routers cannot trade cost for quality")
    with np.errstate(invalid="ignore"):
        means = np.nanmean(np.where(outcomes.cost > 0, outcomes.cost, np.nan), axis=0)
    low = 0.1 * float(np.nanmin(means))
    high = 1000.0 * float(positive.max())
    return np.geomspace(low, high, n_points)


def routable_models(outcomes: OutcomeMatrix) -> tuple[OutcomeMatrix, list[str]]:
    """Leave out models that have no known cost (or quality) on any prompt: they cannot be routed to.

    Returns the matrix over the remaining models and the names left out.
    """
    known = np.isfinite(outcomes.cost).any(axis=0) & np.isfinite(outcomes.quality).any(axis=0)
    kept = [m for m, k in zip(outcomes.models, known, strict=True) if k]
    dropped = [m for m, k in zip(outcomes.models, known, strict=True) if not k]
    if len(kept) < 2:
        raise DataError(
            f"only {len(kept)} model(s) have a known cost; routing needs at least two",
            hint="price the others with a price table",
        )
    return (outcomes.select_models(kept) if dropped else outcomes), dropped


def baseline_routers(models: list[str], *, seed: int = 0) -> dict[str, Router]:
    """oracle, random, zero and single:<model> for each model."""
    routers: dict[str, Router] = {
        "oracle": OracleRouter(),
        "random": RandomRouter(seed=seed),
        "zero": ZeroRouter(seed=seed),
    }
    routers.update({f"single:{m}": SingleModelRouter(m) for m in models})
    return routers


def default_routers(
    models: list[str], *, seed: int = 0, learned: bool = True, encoder: PromptEncoder | None = None
) -> dict[str, Router]:
    """The baselines plus every learned router by its name, all sharing one encoder (default: the
    package's default encoder), so prompts are embedded once."""
    routers = baseline_routers(models, seed=seed)
    if learned:
        from rankroute.route.embeddings import default_encoder
        from rankroute.route.registry import learned_routers

        routers.update(learned_routers(encoder or default_encoder()))
    return routers


@dataclass
class Decisions:
    """One router's per-prompt outcome at each operating point: arrays (n_test, n_points)."""

    cost: np.ndarray
    quality: np.ndarray
    strong_call: np.ndarray | None
    operating_points: np.ndarray
    """The lambda of each column (for zero: NaN, its columns are the single models)."""


@dataclass
class RouterEvaluation:
    """Everything a run produced: one row per (dataset, router) plus the curves behind them."""

    rows: list[dict[str, Any]]
    curves: dict[str, dict[str, dict[str, list[float]]]]
    single_points: dict[str, dict[str, tuple[float, float]]]
    cost_ranges: dict[str, tuple[float, float]]
    grid: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "willingness_to_pay_grid": self.grid.tolist(),
            "cost_ranges": {k: list(v) for k, v in self.cost_ranges.items()},
            "single_points": {
                d: {m: list(p) for m, p in pts.items()} for d, pts in self.single_points.items()
            },
            "rows": self.rows,
            "curves": self.curves,
        }


def _uses_linear_tradeoff(router: Router) -> bool:
    return type(router).route_indices is Router.route_indices and type(router).calls is Router.calls


def router_decisions(
    router: Router, test: OutcomeMatrix, grid: np.ndarray, strong_column: int | None
) -> Decisions:
    """Sweep a fitted router over the grid on test prompts, scoring its choices with the true outcomes."""
    rows = np.arange(test.n_prompts)
    columns = [router.models_.index(m) for m in test.models]
    if columns != list(range(len(test.models))):
        raise DataError(f"router was fitted on models {router.models_}, the test data has {test.models}")
    if isinstance(router, ZeroRouter):
        # RouterBench's Zero router: its operating points are the single models (mixes lie on the hull)
        chosen = np.tile(np.arange(len(test.models)), (test.n_prompts, 1))
        called_cost = test.cost[rows[:, None], chosen]
        strong = None if strong_column is None else chosen == strong_column
        return Decisions(
            called_cost, test.quality[rows[:, None], chosen], strong, np.full(len(test.models), np.nan)
        )
    cost = np.empty((test.n_prompts, grid.size))
    quality = np.empty((test.n_prompts, grid.size))
    strong_call = np.zeros((test.n_prompts, grid.size), dtype=bool)
    if _uses_linear_tradeoff(router):
        predicted_quality = router.predict_quality(test)
        predicted_cost = router.predict_cost(test)
        for g, lam in enumerate(grid):
            chosen = np.argmax(predicted_quality - predicted_cost / lam, axis=1)
            cost[:, g] = test.cost[rows, chosen]
            quality[:, g] = test.quality[rows, chosen]
            if strong_column is not None:
                strong_call[:, g] = chosen == strong_column
    elif callable(decide_grid := getattr(router, "decide_grid", None)):
        # a cascade decides the whole grid in one pass: (n, G) choices and (n, G, M) calls
        chosen_grid, called_grid = decide_grid(test, grid)
        cost[:] = np.where(called_grid, test.cost[:, None, :], 0.0).sum(axis=2)
        quality[:] = test.quality[rows[:, None], chosen_grid]
        if strong_column is not None:
            strong_call[:] = called_grid[:, :, strong_column]
    else:
        for g, lam in enumerate(grid):
            chosen = router.route_indices(test, float(lam))
            called = router.calls(test, float(lam))
            cost[:, g] = np.where(called, test.cost, 0.0).sum(axis=1)
            quality[:, g] = test.quality[rows, chosen]
            if strong_column is not None:
                strong_call[:, g] = called[:, strong_column]
    return Decisions(cost, quality, strong_call if strong_column is not None else None, grid.copy())


def _strong_weak_curve(
    pct: np.ndarray, quality: np.ndarray, weak: float, strong: float, anchored: bool
) -> tuple[np.ndarray, np.ndarray]:
    """A router's (strong-call %, quality) points, anchored at all-weak and all-strong.

    RouteLLM sweeps a threshold over the router's scores from "nothing to the strong model" to "everything",
    so its curves always start at (0 %, weak quality) and end at (100 %, strong quality); a lambda sweep may
    stop short of 100 % (a router sure that the weak model suffices for some prompts), so both ends are
    added. Single models are left as they are: they have no curve.
    """
    if not anchored:
        return pct, quality
    return np.concatenate(([0.0], pct, [100.0])), np.concatenate(([weak], quality, [strong]))


def _bootstrap_weights(n: int, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """(n_bootstrap, n) resampling counts of prompts, each row summing to n."""
    draws = rng.integers(0, n, size=(n_bootstrap, n))
    flat = (np.arange(n_bootstrap)[:, None] * n + draws).ravel()
    return np.bincount(flat, minlength=n_bootstrap * n).reshape(n_bootstrap, n).astype("float64")


def _interval(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None, None
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def _num(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def evaluate_routers(
    outcomes: OutcomeMatrix,
    routers: Mapping[str, Router],
    *,
    test_size: float = 0.3,
    seed: int = 0,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    grid: np.ndarray | None = None,
    split: PromptSplit | None = None,
    progress: Progress | None = None,
) -> RouterEvaluation:
    """Fit every router on the training prompts and score it on the test prompts (see module docstring).

    Only prompts with a known quality and cost for every model are used. `routers` are fitted in place.
    """
    complete = outcomes.complete_rows()
    if complete.n_prompts < 2:
        raise DataError(
            f"only {complete.n_prompts} prompt(s) have a known quality and cost for all "
            f"{len(outcomes.models)} models; routing needs costs (a price table) and every model's outcomes",
        )
    if len(complete.models) < 2:
        raise DataError(f"routing needs at least two models, the data has {complete.models}")
    if not routers:
        raise DataError("no routers to evaluate")
    split = split or split_by_prompt(complete, test_size=test_size, seed=seed)
    assert_disjoint(complete, split)
    train, test = split.apply(complete)
    grid = willingness_grid(train) if grid is None else np.asarray(grid, dtype="float64")
    train_cost = np.nanmean(train.cost, axis=0)
    two_models = len(complete.models) == 2
    strong_column = int(np.argmax(train_cost)) if two_models else None

    decisions: dict[str, Decisions] = {}
    for name, router in routers.items():
        router.fit(train)
        decisions[name] = router_decisions(router, test, grid, strong_column)
        if progress is not None:
            progress(name)

    # the bootstrap multiplies many small matrices: one BLAS thread is faster than several contending
    with threadpool_limits(limits=1, user_api="blas"):
        rows, curves, single_points, cost_ranges = _score(
            test, decisions, strong_column, train.n_prompts, seed, n_bootstrap, confidence
        )
    meta = {
        "seed": seed,
        "test_size": split.test_size,
        "n_bootstrap": n_bootstrap,
        "confidence": confidence,
        "n_prompts_used": complete.n_prompts,
        "n_prompts_dropped_incomplete": outcomes.n_prompts - complete.n_prompts,
        "n_train_prompts": int(train.n_prompts),
        "n_test_prompts": int(test.n_prompts),
        "models": list(complete.models),
        "datasets": list(curves),
        "cost_range_rule": "[cheapest single model's mean cost, dearest single model's mean cost] on the "
        "dataset's test prompts",
        "willingness_to_pay_rule": "geomspace(0.1 x smallest model mean cost, 1000 x largest call cost), "
        "on train",
    }
    return RouterEvaluation(rows, curves, single_points, cost_ranges, grid, meta)


def _score(
    test: OutcomeMatrix,
    decisions: Mapping[str, Decisions],
    strong_column: int | None,
    n_train: int,
    seed: int,
    n_bootstrap: int,
    confidence: float,
) -> tuple[
    list[dict[str, Any]],
    dict[str, dict[str, dict[str, list[float]]]],
    dict[str, dict[str, tuple[float, float]]],
    dict[str, tuple[float, float]],
]:
    """Rows and curves per (dataset, router), resampling the test prompts of each dataset together."""
    names = test.dataset_names()
    datasets = [*names, ALL_DATASETS]  # `all` even for one dataset: every run has the same row keys
    test_datasets = np.asarray([str(d) for d in test.datasets])
    rows: list[dict[str, Any]] = []
    curves: dict[str, dict[str, dict[str, list[float]]]] = {}
    single_points: dict[str, dict[str, tuple[float, float]]] = {}
    cost_ranges: dict[str, tuple[float, float]] = {}
    for d_index, dataset in enumerate(datasets):
        index = (
            np.arange(test.n_prompts) if dataset == ALL_DATASETS else np.flatnonzero(test_datasets == dataset)
        )
        n = index.size
        model_cost = test.cost[index].mean(axis=0)
        model_quality = test.quality[index].mean(axis=0)
        single_points[dataset] = {
            m: (float(c), float(q)) for m, c, q in zip(test.models, model_cost, model_quality, strict=True)
        }
        cost_range = (float(model_cost.min()), float(model_cost.max()))
        cost_ranges[dataset] = cost_range
        weights = _bootstrap_weights(n, n_bootstrap, np.random.default_rng([seed, d_index]))
        boot_model_quality = weights @ test.quality[index] / n
        curves[dataset] = {}
        boot_aiqs: dict[str, np.ndarray] = {}
        dataset_rows: list[dict[str, Any]] = []
        for name, dec in decisions.items():
            mean_cost = dec.cost[index].mean(axis=0)
            mean_quality = dec.quality[index].mean(axis=0)
            hull_cost, hull_quality = non_decreasing_convex_hull(mean_cost, mean_quality)
            point_aiq = hull_aiq(mean_cost, mean_quality, cost_range)
            boot_cost = weights @ dec.cost[index] / n
            boot_quality = weights @ dec.quality[index] / n
            boot_aiq = np.array(
                [hull_aiq(boot_cost[b], boot_quality[b], cost_range) for b in range(n_bootstrap)]
            )
            aiq_low, aiq_high = _interval(boot_aiq, confidence)
            boot_aiqs[name] = boot_aiq
            row: dict[str, Any] = {
                "dataset": dataset,
                "router": name,
                "aiq": point_aiq,
                "aiq_ci_low": aiq_low,
                "aiq_ci_high": aiq_high,
                "cost_range": list(cost_range),
                "max_quality": float(hull_quality[-1]),
                "cost_at_max_quality": float(hull_cost[-1]),
                "min_cost": float(mean_cost.min()),
                "n_test_prompts": int(n),
                "n_train_prompts": n_train,
            }
            curve: dict[str, list[float]] = {
                "cost": mean_cost.tolist(),
                "quality": mean_quality.tolist(),
                "hull_cost": hull_cost.tolist(),
                "hull_quality": hull_quality.tolist(),
            }
            if strong_column is not None and dec.strong_call is not None:
                weak_column = 1 - strong_column
                strong_q, weak_q = model_quality[strong_column], model_quality[weak_column]
                pct = dec.strong_call[index].mean(axis=0) * 100.0
                boot_pct = weights @ dec.strong_call[index].astype("float64") / n * 100.0
                curve["strong_call_pct"] = pct.tolist()
                row["strong_model"] = test.models[strong_column]
                row["weak_model"] = test.models[weak_column]
                boot_weak = boot_model_quality[:, weak_column]
                boot_strong = boot_model_quality[:, strong_column]
                anchored = not name.startswith("single:")
                curve_pct, curve_q = _strong_weak_curve(pct, mean_quality, weak_q, strong_q, anchored)
                boot_curves = [
                    _strong_weak_curve(boot_pct[b], boot_quality[b], boot_weak[b], boot_strong[b], anchored)
                    for b in range(n_bootstrap)
                ]
                with np.errstate(invalid="ignore", divide="ignore"):
                    for key, recovered in (("cpt50", 0.5), ("cpt80", 0.8)):
                        row[key] = _num(cpt(curve_pct, curve_q, weak_q, strong_q, recovered))
                        boot = np.array(
                            [
                                cpt(bp, bq, boot_weak[b], boot_strong[b], recovered)
                                for b, (bp, bq) in enumerate(boot_curves)
                            ]
                        )
                        row[f"{key}_ci_low"], row[f"{key}_ci_high"] = _interval(boot, confidence)
                    row["apgr"] = _num(apgr(curve_pct, curve_q, weak_q, strong_q))
                    boot_apgr = np.array(
                        [apgr(bp, bq, boot_weak[b], boot_strong[b]) for b, (bp, bq) in enumerate(boot_curves)]
                    )
                row["apgr_ci_low"], row["apgr_ci_high"] = _interval(boot_apgr, confidence)
            dataset_rows.append(row)
            curves[dataset][name] = curve
        if "zero" in boot_aiqs:
            # paired: every router was resampled on the same prompts as Zero, so the difference's interval
            # says whether a router beats Zero, which overlapping separate intervals cannot
            zero_aiq = next(r["aiq"] for r in dataset_rows if r["router"] == "zero")
            for row in dataset_rows:
                row["aiq_minus_zero"] = row["aiq"] - zero_aiq
                low, high = _interval(boot_aiqs[row["router"]] - boot_aiqs["zero"], confidence)
                row["aiq_minus_zero_ci_low"], row["aiq_minus_zero_ci_high"] = low, high
        rows.extend(dataset_rows)
    return rows, curves, single_points, cost_ranges


def summarise_splits(
    split_rows: Sequence[Sequence[Mapping[str, Any]]], *, test_size: float, confidence: float = 0.95
) -> list[dict[str, Any]]:
    """AIQ - Zero of each (dataset, router) over several seeded splits of the same prompts.

    One split's test prompts can favour one model by chance (RouterBench's MBPP at seed 0: a model 0.16
    better on its test prompts than on its training prompts), and Zero draws its points from the test
    prompts with hindsight. Repeating the split shows whether a router's gain is the split's or the
    router's. The splits overlap, so the plain t-interval over them is too narrow; the interval here uses
    Nadeau and Bengio's corrected resampled t (variance x (1/J + n_test/n_train), J splits).
    `split_rows` holds evaluate_routers' rows of each split (with `aiq_minus_zero`).
    """
    from scipy import stats

    if not 0.0 < test_size < 1.0:
        raise DataError(f"test_size must be strictly between 0 and 1, got {test_size}")
    per_key: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for rows in split_rows:
        for row in rows:
            if row.get("aiq_minus_zero") is not None:
                key = (str(row["dataset"]), str(row["router"]))
                per_key.setdefault(key, []).append((float(row["aiq"]), float(row["aiq_minus_zero"])))
    summary = []
    for (dataset, router), values in per_key.items():
        aiqs, gains = np.array(values).T
        n = gains.size
        spread = float(np.std(gains, ddof=1)) if n > 1 else float("nan")
        half = float("nan")
        if n > 1:
            corrected = np.sqrt((1.0 / n + test_size / (1.0 - test_size)) * spread**2)
            half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1) * corrected)
        mean = float(gains.mean())
        summary.append(
            {
                "dataset": dataset,
                "router": router,
                "n_splits": n,
                "mean_aiq": float(aiqs.mean()),
                "mean_aiq_minus_zero": mean,
                "aiq_minus_zero_ci_low": _num(mean - half),
                "aiq_minus_zero_ci_high": _num(mean + half),
                "splits_ahead_of_zero": int((gains > 0).sum()),
                "aiq_minus_zero_per_split": gains.tolist(),
            }
        )
    return summary
