"""Hull, AIQ, CPT and APGR: exact on hand-computed cases, and the properties RouterBench/RouteLLM rely on."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankroute.route.curves import aiq, apgr, cpt, hull_aiq, non_decreasing_convex_hull, pgr

TOL = 1e-9
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_infinity=False)
cost = st.floats(min_value=1e-4, max_value=1.0, allow_nan=False, allow_infinity=False)
points = st.lists(st.tuples(cost, unit), min_size=1, max_size=25)


def _arrays(pts: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def test_hull_drops_points_under_the_chord_and_after_the_best() -> None:
    hx, hy = non_decreasing_convex_hull([1, 2, 3, 4], [0.5, 0.6, 0.9, 0.8])
    assert hx.tolist() == [1, 3] and hy.tolist() == [0.5, 0.9]


def test_hull_keeps_the_best_of_equal_costs_and_drops_dearer_equal_quality() -> None:
    hx, hy = non_decreasing_convex_hull([1, 1, 2, 3], [0.2, 0.4, 0.7, 0.7])
    assert hx.tolist() == [1, 2] and hy.tolist() == [0.4, 0.7]


def test_hull_ignores_non_finite_points() -> None:
    hx, hy = non_decreasing_convex_hull([1, np.nan, 2], [0.5, 0.9, np.inf])
    assert hx.tolist() == [1] and hy.tolist() == [0.5]


def test_aiq_hand_computed() -> None:
    hx, hy = non_decreasing_convex_hull([1, 2, 3, 4], [0.5, 0.6, 0.9, 0.8])
    # RouterBench's range [0, largest cost]: nothing left of cost 1, trapezoid 1..3, flat 3..4
    assert aiq(hx, hy, (0, 4)) == pytest.approx((0.5 + 0.9) / 2 * 2 / 4 + 0.9 / 4)
    # from cost 2 (hull value 0.7 there) to 4
    assert aiq(hx, hy, (2, 4)) == pytest.approx(((0.7 + 0.9) / 2 + 0.9) / 2)
    # one point at cost 2 over [1, 3]: zero on [1, 2], flat 0.6 on [2, 3]
    assert aiq([2.0], [0.6], (1, 3)) == pytest.approx(0.3)
    # a point at the top of the range has no width to its right
    assert aiq([3.0], [0.9], (1, 3)) == 0.0
    assert aiq([1.0, 2.0], [0.4, 0.8], (1.5, 1.5)) == pytest.approx(0.6)


def test_aiq_rejects_inverted_range() -> None:
    with pytest.raises(ValueError, match="low <= high"):
        aiq([1.0], [0.5], (2, 1))


@settings(max_examples=60, deadline=None)
@given(points)
def test_hull_is_non_decreasing_concave_and_covers_every_point(pts: list[tuple[float, float]]) -> None:
    x, y = _arrays(pts)
    hx, hy = non_decreasing_convex_hull(x, y)
    assert hx[0] == x.min()
    assert np.all(np.diff(hx) > 0)
    assert np.all(np.diff(hy) >= -TOL)
    slopes = np.diff(hy) / np.diff(hx)
    assert np.all(np.diff(slopes) <= 1e-6 * (1 + np.abs(slopes[1:])))
    assert hy[-1] == y.max()
    # every point lies on or under the curve (flat to the right of the best point)
    assert np.all(y <= np.interp(x, hx, hy) + 1e-9)


@settings(max_examples=60, deadline=None)
@given(points, st.data())
def test_aiq_ignores_dominated_points(pts: list[tuple[float, float]], data: st.DataObject) -> None:
    x, y = _arrays(pts)
    cost_range = (0.0, 1.0)
    base = hull_aiq(x, y, cost_range)
    i = data.draw(st.integers(0, len(pts) - 1))
    extra_cost = data.draw(st.floats(min_value=x[i], max_value=1.0))
    extra_quality = data.draw(st.floats(min_value=0.0, max_value=y[i]))
    assert hull_aiq(np.r_[x, extra_cost], np.r_[y, extra_quality], cost_range) == pytest.approx(base, abs=TOL)


@settings(max_examples=60, deadline=None)
@given(points, st.data())
def test_raising_a_point_never_lowers_aiq(pts: list[tuple[float, float]], data: st.DataObject) -> None:
    x, y = _arrays(pts)
    low = data.draw(st.floats(min_value=0.0, max_value=1.0))
    high = data.draw(st.floats(min_value=low, max_value=1.0))
    base = hull_aiq(x, y, (low, high))
    i = data.draw(st.integers(0, len(pts) - 1))
    raised = y.copy()
    raised[i] = data.draw(st.floats(min_value=y[i], max_value=1.0))
    assert hull_aiq(x, raised, (low, high)) >= base - TOL
    assert 0.0 <= base <= y.max() + TOL


def test_pgr_cpt_apgr_hand_computed() -> None:
    pct, quality = [0.0, 50.0, 100.0], [0.6, 0.8, 0.9]
    assert pgr(0.75, 0.6, 0.9) == pytest.approx(0.5)
    # PGR 50 % -> quality 0.75, between (0 %, 0.6) and (50 %, 0.8)
    assert cpt(pct, quality, 0.6, 0.9, 0.5) == pytest.approx(37.5)
    # PGR 80 % -> quality 0.84, between (50 %, 0.8) and (100 %, 0.9)
    assert cpt(pct, quality, 0.6, 0.9, 0.8) == pytest.approx(70.0)
    area = (0.6 + 0.8) / 2 * 0.5 + (0.8 + 0.9) / 2 * 0.5
    assert apgr(pct, quality, 0.6, 0.9) == pytest.approx((area - 0.6) / (0.9 - 0.6))


def test_random_mix_recovers_the_gap_linearly() -> None:
    # RouteLLM's random router in expectation: the straight line from weak to strong
    assert cpt([0, 100], [0.6, 0.9], 0.6, 0.9, 0.5) == pytest.approx(50.0)
    assert cpt([100, 0], [0.9, 0.6], 0.6, 0.9, 0.8) == pytest.approx(80.0)  # order of points is irrelevant
    assert apgr([0, 25, 100], [0.6, 0.675, 0.9], 0.6, 0.9) == pytest.approx(0.5)


def test_apgr_undefined_without_a_spread_of_calls() -> None:
    assert np.isnan(apgr([30.0, 30.0], [0.7, 0.7], 0.6, 0.9))


def test_cpt_is_the_first_crossing_and_nan_when_never_reached() -> None:
    # rises past the target at 20 %, dips, rises again: the first crossing counts (np.interp would not say)
    pct, quality = [0, 20, 40, 100], [0.6, 0.8, 0.7, 0.9]
    assert cpt(pct, quality, 0.6, 0.9, 0.5) == pytest.approx(0.15 / 0.2 * 20)
    assert np.isnan(cpt([0, 30], [0.6, 0.7], 0.6, 0.9, 0.8))


def test_no_gap_to_recover_when_the_dearer_model_is_not_better() -> None:
    """The demo's case: the dearer model scores below the cheaper one, so PGR's denominator is negative."""
    pct, quality = [0, 40, 100], [0.32, 0.38, 0.29]
    assert np.isnan(cpt(pct, quality, 0.32, 0.29, 0.5)) and np.isnan(cpt(pct, quality, 0.32, 0.32, 0.5))
    assert np.isnan(apgr(pct, quality, 0.32, 0.29)) and np.isnan(apgr(pct, quality, 0.32, 0.32))
