"""Cost-quality curves of routers: RouterBench's hull and AIQ, RouteLLM's PGR, CPT and APGR.

RouterBench (Hu et al. 2024, `withmartian/routerbench`, evaluation/AIQ.py) summarises a router by the
non-decreasing convex hull of its (cost, quality) points and the area under it (AIQ). RouteLLM
(Ong et al. 2024, `lm-sys/RouteLLM`, routellm/evals/evaluate.py) summarises a strong/weak router by the share
of strong-model calls it needs to recover a part of the quality gap between the two models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def non_decreasing_convex_hull(costs: ArrayLike, qualities: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of RouterBench's non-decreasing convex hull, sorted by cost.

    The upper convex hull of the points, cut at its best point: a point that costs more than another but is
    not better is dropped, so the curve rises (concave) up to the best point and stays flat after it.
    Where several points share a cost only the best counts. Non-finite points are ignored.
    """
    x = np.asarray(costs, dtype="float64").ravel()
    y = np.asarray(qualities, dtype="float64").ravel()
    if x.shape != y.shape:
        raise ValueError(f"costs {x.shape} and qualities {y.shape} differ in length")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size == 0:
        return np.empty(0), np.empty(0)
    order = np.lexsort((-y, x))  # by cost, best first among equal costs
    x, y = x[order], y[order]
    # Pareto front first: a point is kept only if it beats every cheaper (or equally cheap) point; this drops
    # equal-cost losers and dearer-but-not-better points, and leaves few points for the hull scan.
    best_before = np.maximum.accumulate(np.concatenate(([-np.inf], y[:-1])))
    front = y > best_before
    x, y = x[front], y[front]
    xs, ys = x.tolist(), y.tolist()  # plain floats: the scan is scalar work
    hull: list[int] = []
    for i in range(len(xs)):
        # pop the last vertex while it lies on or under the chord from the one before it to point i
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (xs[b] - xs[a]) * (ys[i] - ys[a]) - (ys[b] - ys[a]) * (xs[i] - xs[a]) >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    # the upper hull of a rising front rises: it ends at the best point, and the curve is flat after it
    return x[hull], y[hull]


def aiq(hull_costs: ArrayLike, hull_qualities: ArrayLike, cost_range: Sequence[float]) -> float:
    """Average quality of a hull over cost_range = [low, high]: its area over the range divided by the width.

    As in RouterBench's calc_AIQ: the piecewise-linear hull is extended flat to the right of its last
    (best) point, and nothing is counted to the left of its cheapest point (a router cannot spend less
    than that, so the area there is zero). RouterBench integrates over [0, the largest cost of all routers];
    pass that range to reproduce its figure exactly. Where low == high the value of the curve at low is
    returned.
    """
    x = np.asarray(hull_costs, dtype="float64").ravel()
    y = np.asarray(hull_qualities, dtype="float64").ravel()
    low, high = float(cost_range[0]), float(cost_range[1])
    if not high >= low:
        raise ValueError(f"cost_range must be [low, high] with low <= high, got {list(cost_range)}")
    if x.size == 0:
        return float("nan")
    if high == low:
        return float(np.interp(low, x, y)) if low >= x[0] else 0.0
    start = max(low, float(x[0]))
    if start >= high:
        return 0.0
    inner = x[(x > start) & (x < high)]
    grid = np.concatenate(([start], inner, [high]))
    values = np.interp(grid, x, y)
    area = float(np.sum((grid[1:] - grid[:-1]) * (values[1:] + values[:-1]) / 2.0))
    return area / (high - low)


def hull_aiq(costs: ArrayLike, qualities: ArrayLike, cost_range: Sequence[float]) -> float:
    """AIQ of the non-decreasing convex hull of raw (cost, quality) points."""
    return aiq(*non_decreasing_convex_hull(costs, qualities), cost_range)


def pgr(quality: ArrayLike, weak_quality: float, strong_quality: float) -> np.ndarray:
    """Performance gap recovered: (quality - weak) / (strong - weak), RouteLLM's PGR."""
    return (np.asarray(quality, dtype="float64") - weak_quality) / (strong_quality - weak_quality)


def _by_call_share(strong_call_pct: ArrayLike, qualities: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    pct = np.asarray(strong_call_pct, dtype="float64").ravel()
    quality = np.asarray(qualities, dtype="float64").ravel()
    if pct.shape != quality.shape or pct.size == 0:
        raise ValueError("strong_call_pct and qualities need the same, non-zero length")
    order = np.argsort(pct, kind="stable")
    return pct[order], quality[order]


def cpt(
    strong_call_pct: ArrayLike,
    qualities: ArrayLike,
    weak_quality: float,
    strong_quality: float,
    recovered: float,
) -> float:
    """Call-performance threshold: % of strong-model calls needed to reach PGR = recovered (e.g. 0.5).

    RouteLLM's definition (evaluate.py, pct_call_metric): the router's operating points, sorted by
    strong-call percentage and joined linearly, are read at quality target = weak + recovered * (strong -
    weak). RouteLLM reads it with np.interp(target, quality, pct), which is only meaningful while quality
    rises with the share of calls; this returns the first share at which the curve reaches the target, the
    same number on such curves and well defined on others. NaN when the curve never reaches the target.
    Returns a percentage in [0, 100] of calls, as RouteLLM reports it. NaN too when the strong model is
    not better than the weak one on these prompts: there is no gap to recover.
    """
    pct, quality = _by_call_share(strong_call_pct, qualities)
    if not strong_quality > weak_quality:
        return float("nan")
    target = weak_quality + recovered * (strong_quality - weak_quality)
    if quality[0] >= target:
        return float(pct[0])
    reached = np.flatnonzero((quality[:-1] < target) & (quality[1:] >= target))
    if reached.size == 0:
        return float("nan")
    i = int(reached[0])
    return float(pct[i] + (target - quality[i]) / (quality[i + 1] - quality[i]) * (pct[i + 1] - pct[i]))


def apgr(
    strong_call_pct: ArrayLike, qualities: ArrayLike, weak_quality: float, strong_quality: float
) -> float:
    """Average performance gap recovered over the call-percentage range the router's points span.

    RouteLLM's definition (evaluate.py, apgr_metric): (AUC - weak AUC) / (strong AUC - weak AUC), where AUC
    is the trapezoidal area of quality over strong-call share (points sorted by share), and the weak and
    strong AUCs are the constant single-model qualities integrated over the same share range. A random
    strong/weak mix scores 0.5; a router that spans 0-100 % of calls gets the mean PGR over that range.
    NaN when the strong (dearer) model is not better than the weak one on these prompts: no gap to recover.
    """
    pct, quality = _by_call_share(strong_call_pct, qualities)
    share = pct / 100.0
    width = share[-1] - share[0]
    if width <= 0 or not strong_quality > weak_quality:
        return float("nan")
    area = float(np.sum((share[1:] - share[:-1]) * (quality[1:] + quality[:-1]) / 2.0))
    return (area - weak_quality * width) / ((strong_quality - weak_quality) * width)
