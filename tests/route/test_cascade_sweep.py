"""The cascade on the real RouterBench subset: one-pass grid decisions equal per-lambda ones, escalation
grows with willingness to pay, and missing answers (None, NaN, pandas NA) are read as "no answer"."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routing_data import routerbench_matrix

from rankroute.data.matrix import OutcomeMatrix
from rankroute.route.cascade import CascadeRouter, answer_features, missing_answer, normalise_answer
from rankroute.route.embeddings import TfidfEncoder
from rankroute.route.evaluate import router_decisions


@pytest.fixture(scope="module")
def sample() -> tuple[OutcomeMatrix, OutcomeMatrix]:
    matrix = routerbench_matrix().complete_rows()
    order = np.random.default_rng(5).permutation(matrix.n_prompts)
    return matrix.subset(np.sort(order[:600])), matrix.subset(np.sort(order[600:900]))


@pytest.fixture(scope="module")
def cascade(sample: tuple[OutcomeMatrix, OutcomeMatrix]) -> CascadeRouter:
    router = CascadeRouter(encoder=TfidfEncoder(svd_components=32))
    router.fit(sample[0])
    return router


lambdas = st.lists(st.floats(1e-6, 10.0), min_size=1, max_size=6)


@settings(max_examples=25, deadline=None)
@given(grid=lambdas)
def test_grid_decisions_equal_one_lambda_at_a_time(
    cascade: CascadeRouter, sample: tuple[OutcomeMatrix, OutcomeMatrix], grid: list[float]
) -> None:
    _, test = sample
    chosen, called = cascade.decide_grid(test, np.asarray(grid))
    assert chosen.shape == (test.n_prompts, len(grid))
    assert called.shape == (test.n_prompts, len(grid), len(test.models))
    for g, lam in enumerate(grid):
        one_chosen, one_called = cascade.decide(test, lam)
        assert (chosen[:, g] == one_chosen).all() and (called[:, g] == one_called).all()
        assert called[np.arange(test.n_prompts), g, chosen[:, g]].all()  # the answer returned was paid for


@settings(max_examples=25, deadline=None)
@given(low=st.floats(1e-6, 1.0), factor=st.floats(1.0, 1e4))
def test_more_willingness_never_calls_fewer_models(
    cascade: CascadeRouter, sample: tuple[OutcomeMatrix, OutcomeMatrix], low: float, factor: float
) -> None:
    _, test = sample
    _, called = cascade.decide_grid(test, np.asarray([low, low * factor]))
    assert (called[:, 1] >= called[:, 0]).all()


def test_evaluation_sweep_scores_every_model_called(
    cascade: CascadeRouter, sample: tuple[OutcomeMatrix, OutcomeMatrix]
) -> None:
    _, test = sample
    grid = np.geomspace(1e-5, 1.0, 9)
    decisions = router_decisions(cascade, test, grid, None)
    for g, lam in enumerate(grid):
        chosen, called = cascade.decide(test, float(lam))
        np.testing.assert_allclose(decisions.cost[:, g], (called * test.cost).sum(axis=1))
        answered = test.quality[np.arange(test.n_prompts), chosen]
        np.testing.assert_array_equal(decisions.quality[:, g], answered)


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NA])
def test_missing_answers_read_as_no_answer(missing: object) -> None:
    assert missing_answer(missing) and normalise_answer(missing) == ""
    assert answer_features(["B", missing], 1) == answer_features(["B", ""], 1)
    assert not missing_answer("") and not missing_answer("A")


def test_cascade_fits_and_routes_with_pandas_na_answers(sample: tuple[OutcomeMatrix, OutcomeMatrix]) -> None:
    """A matrix built straight from frames keeps pandas' NA for answers it lacks; the cascade must treat
    them as missing (it used to raise "boolean value of NA is ambiguous") and decide as with None."""
    train, test = sample
    assert train.responses is not None and test.responses is not None

    def with_holes(matrix: OutcomeMatrix, blank: object) -> OutcomeMatrix:
        answers = matrix.responses.copy()  # type: ignore[union-attr]
        answers[::7, ::3] = blank
        return dataclasses.replace(matrix, responses=answers)

    decisions = []
    for blank in (pd.NA, None):
        router = CascadeRouter(encoder=TfidfEncoder(svd_components=16))
        router.fit(with_holes(train, blank))
        decisions.append(router.decide_grid(with_holes(test, blank), np.asarray([1e-3, 0.05])))
    assert (decisions[0][0] == decisions[1][0]).all() and (decisions[0][1] == decisions[1][1]).all()


def test_the_answer_is_the_stopping_stages(
    cascade: CascadeRouter, sample: tuple[OutcomeMatrix, OutcomeMatrix]
) -> None:
    """FrugalGPT's rule: the cascade returns the answer of the last model it called. (It used to return the
    most trusted answer paid for, and at the largest lambda returned cheap answers over the chain's top
    model's, never reaching that model's quality on ARC-C.)"""
    test = sample[1]
    grid = np.array([1e-5, 1e-3, 1e6])
    chosen, called = cascade.decide_grid(test, grid)
    tasks = cascade.task_detector_.predict_proba(list(test.texts)).argmax(axis=1)
    escalated = 0
    for i in range(test.n_prompts):
        chain = cascade.chains_[tasks[i]]
        for g in range(grid.size):
            stages = [position for position, j in enumerate(chain) if called[i, g, j]]
            assert stages == list(range(len(stages)))  # a prefix of the chain
            assert chosen[i, g] == chain[stages[-1]]
            escalated += len(stages) > 1
    assert escalated > 0  # the rule was exercised beyond the first stage
