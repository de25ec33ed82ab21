"""Choosing lambda on calibration prompts for a budget or a quality target, checked on held-out ones."""

from __future__ import annotations

import numpy as np
import pytest
from routing_data import routerbench_matrix

from rankroute.data.errors import DataError
from rankroute.route.baselines import OracleRouter, RandomRouter
from rankroute.route.calibrate import (
    Calibration,
    CostQualityCurve,
    choose_willingness_to_pay,
    held_out_check,
    held_out_from_evaluation,
)
from rankroute.route.evaluate import evaluate_routers
from rankroute.route.split import split_by_prompt

CURVE = CostQualityCurve(
    willingness_to_pay=[0.001, 0.01, 0.1, 1.0],
    mean_cost=[0.0001, 0.0004, 0.002, 0.005],  # USD per prompt: 0.1, 0.4, 2, 5 USD per 1k
    mean_quality=[0.60, 0.75, 0.85, 0.86],
    best_single_quality=0.88,
)


def test_budget_picks_the_best_quality_within_it() -> None:
    picked = choose_willingness_to_pay(CURVE, budget_per_1k=2.5)
    assert (picked.willingness_to_pay, picked.met) == (0.1, True)
    assert picked.cost_per_1k == pytest.approx(2.0) and picked.quality == 0.85


def test_budget_below_every_setting_falls_back_to_the_cheapest() -> None:
    picked = choose_willingness_to_pay(CURVE, budget_per_1k=0.01)
    assert (picked.willingness_to_pay, picked.met) == (0.001, False)


def test_quality_share_picks_the_cheapest_setting_reaching_it() -> None:
    picked = choose_willingness_to_pay(CURVE, quality_share=0.85)  # 0.85 x 0.88 = 0.748
    assert (picked.willingness_to_pay, picked.met) == (0.01, True)
    unreachable = choose_willingness_to_pay(CURVE, quality_share=1.0)
    assert (unreachable.willingness_to_pay, unreachable.met) == (1.0, False)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"budget_per_1k": 1.0, "quality_share": 0.9}, {"budget_per_1k": -1.0}, {"quality_share": 0.0}],
)
def test_bad_targets(kwargs: dict[str, float]) -> None:
    with pytest.raises(DataError):
        choose_willingness_to_pay(CURVE, **kwargs)


def test_calibrated_on_train_checked_on_held_out_routerbench() -> None:
    matrix = routerbench_matrix().complete_rows()
    train, test = split_by_prompt(matrix, seed=0).apply(matrix)
    router = RandomRouter(seed=0).fit(train)
    curve = CostQualityCurve.measure(router, train)
    assert np.all(np.diff(curve.mean_cost) >= -1e-12)  # paying more never buys a cheaper mix
    picked = choose_willingness_to_pay(curve, budget_per_1k=1.0)
    assert picked.met and picked.cost_per_1k <= 1.0
    report = held_out_check(router, picked, test)
    assert report["n_held_out_prompts"] == test.n_prompts
    # a prompt-blind router's realised cost on new prompts stays close to its calibration cost
    assert report["held_out_cost_per_1k"] == pytest.approx(picked.cost_per_1k, rel=0.15)
    oracle = OracleRouter().fit(train)
    share = choose_willingness_to_pay(CostQualityCurve.measure(oracle, train), quality_share=1.0)
    assert share.met and held_out_check(oracle, share, test)["held_out_quality_share"] >= 1.0


def test_held_out_figures_read_off_the_evaluation_equal_routing_again() -> None:
    """route eval reads the calibrated lambda's held-out cost and quality off its own test curve."""
    matrix = routerbench_matrix().complete_rows()
    split = split_by_prompt(matrix, seed=0)
    train, test = split.apply(matrix)
    routers = {"random": RandomRouter(seed=0), "oracle": OracleRouter()}
    evaluation = evaluate_routers(matrix, routers, split=split, n_bootstrap=10)
    for name, router in routers.items():
        for target in ({"budget_per_1k": 1.0}, {"quality_share": 0.9}):
            picked = choose_willingness_to_pay(
                CostQualityCurve.measure(router, train, evaluation.grid), **target
            )
            read = held_out_from_evaluation(evaluation, name, picked)
            routed = held_out_check(router, picked, test)
            assert read.keys() == routed.keys()
            for key, value in routed.items():
                assert read[key] == (pytest.approx(value) if isinstance(value, float) else value), key


def test_held_out_figures_need_a_point_of_the_evaluation() -> None:
    matrix = routerbench_matrix().complete_rows()
    evaluation = evaluate_routers(matrix, {"random": RandomRouter(seed=0)}, seed=0, n_bootstrap=10)
    off_grid = Calibration(float(evaluation.grid[3]) * 1.5, "quality_share", 0.9, 1.0, 0.8, True)
    with pytest.raises(DataError, match="no test point for router 'random'"):
        held_out_from_evaluation(evaluation, "random", off_grid)
    with pytest.raises(DataError, match="no test point for router 'knn'"):
        held_out_from_evaluation(evaluation, "knn", off_grid)
