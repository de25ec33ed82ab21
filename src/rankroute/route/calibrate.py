"""Pick a router's willingness to pay for a target budget or quality, on calibration prompts only.

A deployed router needs one lambda. It is chosen on calibration (training) prompts from the router's realised
(cost, quality) curve there, then checked on held-out prompts: the held-out figures are what a user should
expect, and the gap between the two is the honest price of calibrating on past data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rankroute.data.errors import DataError
from rankroute.data.matrix import OutcomeMatrix
from rankroute.route.base import Router
from rankroute.route.evaluate import ALL_DATASETS, RouterEvaluation, router_decisions, willingness_grid


@dataclass(frozen=True)
class CostQualityCurve:
    """A fitted router's realised mean cost (USD per prompt) and mean quality at each lambda of a grid."""

    willingness_to_pay: list[float]
    mean_cost: list[float]
    mean_quality: list[float]
    best_single_quality: float

    @classmethod
    def measure(
        cls, router: Router, outcomes: OutcomeMatrix, grid: np.ndarray | None = None
    ) -> CostQualityCurve:
        complete = outcomes.complete_rows()
        if complete.n_prompts == 0:
            raise DataError("no calibration prompt has a known quality and cost for every model")
        grid = willingness_grid(complete) if grid is None else grid
        decisions = router_decisions(router, complete, grid, None)
        return cls(
            willingness_to_pay=[float(x) for x in grid],
            mean_cost=decisions.cost.mean(axis=0).tolist(),
            mean_quality=decisions.quality.mean(axis=0).tolist(),
            best_single_quality=float(complete.quality.mean(axis=0).max()),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Calibration:
    """The chosen lambda, what it achieved on the calibration prompts, and whether the target was met."""

    willingness_to_pay: float
    target: str
    target_value: float
    cost_per_1k: float
    quality: float
    met: bool


def choose_willingness_to_pay(
    curve: CostQualityCurve, *, budget_per_1k: float | None = None, quality_share: float | None = None
) -> Calibration:
    """Best quality within a budget (USD per 1k prompts), or the cheapest lambda reaching a share of the
    best single model's quality. Where no lambda meets the target, the closest one is returned with met=False.
    """
    if (budget_per_1k is None) == (quality_share is None):
        raise DataError("give exactly one target: a budget in USD per 1k prompts, or a quality share")
    lam = np.asarray(curve.willingness_to_pay)
    cost_1k = np.asarray(curve.mean_cost) * 1000.0
    quality = np.asarray(curve.mean_quality)
    if budget_per_1k is not None:
        if not budget_per_1k > 0:
            raise DataError(f"budget must be > 0 USD per 1k prompts, got {budget_per_1k}")
        within = np.flatnonzero(cost_1k <= budget_per_1k)
        if within.size == 0:
            i, met = int(np.argmin(cost_1k)), False
        else:
            # best quality within budget; among equals the cheapest
            i = int(within[np.lexsort((cost_1k[within], -quality[within]))[0]])
            met = True
        target, value = "budget_per_1k", budget_per_1k
    else:
        assert quality_share is not None
        if not 0 < quality_share <= 1.5:
            raise DataError(f"quality share must be in (0, 1.5], got {quality_share}")
        needed = quality_share * curve.best_single_quality
        reaching = np.flatnonzero(quality >= needed - 1e-12)
        if reaching.size == 0:
            i, met = int(np.argmax(quality)), False
        else:
            i = int(reaching[np.argmin(cost_1k[reaching])])
            met = True
        target, value = "quality_share", quality_share
    return Calibration(float(lam[i]), target, float(value), float(cost_1k[i]), float(quality[i]), met)


def held_out_check(router: Router, calibration: Calibration, held_out: OutcomeMatrix) -> dict[str, Any]:
    """What the chosen lambda achieves on prompts it was not chosen on."""
    complete = held_out.complete_rows()
    decisions = router_decisions(router, complete, np.asarray([calibration.willingness_to_pay]), None)
    return _held_out_report(
        calibration,
        float(decisions.cost.mean()),
        float(decisions.quality.mean()),
        float(complete.quality.mean(axis=0).max()),
        complete.n_prompts,
    )


def held_out_from_evaluation(
    evaluation: RouterEvaluation, router: str, calibration: Calibration, dataset: str = ALL_DATASETS
) -> dict[str, Any]:
    """held_out_check read off an evaluation's test curve instead of routing the test prompts again.

    The lambda was chosen on the evaluation's own grid, so the evaluation already holds what it achieves on
    the test prompts; this saves predicting every test prompt once more per router.
    """
    at = np.flatnonzero(np.isclose(evaluation.grid, calibration.willingness_to_pay, rtol=1e-9, atol=0.0))
    curve = evaluation.curves.get(dataset, {}).get(router)
    if curve is None or at.size == 0:
        raise DataError(
            f"the evaluation has no test point for router {router!r} on {dataset!r} at lambda "
            f"{calibration.willingness_to_pay:g}",
            hint="calibrate on the evaluation's own grid (CostQualityCurve.measure(..., evaluation.grid))",
        )
    best_single = max(quality for _, quality in evaluation.single_points[dataset].values())
    n_prompts = next(
        row["n_test_prompts"]
        for row in evaluation.rows
        if row["dataset"] == dataset and row["router"] == router
    )
    i = int(at[0])
    return _held_out_report(calibration, curve["cost"][i], curve["quality"][i], best_single, n_prompts)


def _held_out_report(
    calibration: Calibration, mean_cost: float, quality: float, best_single: float, n_prompts: int
) -> dict[str, Any]:
    achieved_cost = mean_cost * 1000.0
    return {
        **asdict(calibration),
        "held_out_cost_per_1k": achieved_cost,
        "held_out_quality": quality,
        "held_out_quality_share": quality / best_single if best_single > 0 else None,
        "held_out_within_budget": achieved_cost <= calibration.target_value
        if calibration.target == "budget_per_1k"
        else None,
        "n_held_out_prompts": n_prompts,
    }
