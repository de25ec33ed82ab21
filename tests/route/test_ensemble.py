"""The ensemble router on the real RouterBench subset: it is the weighted mean of its members, and bad
member lists or weights are refused before anything is fitted."""

from __future__ import annotations

import numpy as np
import pytest
from routing_data import routerbench_matrix

from rankroute.data.errors import DataError
from rankroute.data.matrix import OutcomeMatrix
from rankroute.route.embeddings import TfidfEncoder
from rankroute.route.ensemble import EnsembleRouter
from rankroute.route.knn import KNNRouter
from rankroute.route.mf import MatrixFactorizationRouter


@pytest.fixture(scope="module")
def sample() -> tuple[OutcomeMatrix, OutcomeMatrix]:
    matrix = routerbench_matrix().complete_rows()
    order = np.random.default_rng(11).permutation(matrix.n_prompts)
    return matrix.subset(np.sort(order[:500])), matrix.subset(np.sort(order[500:700]))


def test_ensemble_is_the_weighted_mean_of_its_members(sample: tuple[OutcomeMatrix, OutcomeMatrix]) -> None:
    train, test = sample
    encoder = TfidfEncoder(svd_components=32)
    ensemble = EnsembleRouter(members=("knn", "mf"), weights=(3.0, 1.0), encoder=encoder).fit(train)
    knn = KNNRouter(encoder=encoder).fit(train).predict_quality(test)
    mf = MatrixFactorizationRouter(encoder=encoder).fit(train).predict_quality(test)
    np.testing.assert_allclose(ensemble.predict_quality(test), 0.75 * knn + 0.25 * mf, rtol=1e-6)
    np.testing.assert_allclose(
        ensemble.predict_cost(test), KNNRouter(encoder=encoder).fit(train).predict_cost(test)
    )
    chosen = ensemble.route(test, 1e-2)
    assert set(chosen) <= set(test.models) and len(chosen) == test.n_prompts


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"members": ()}, "at least one member"),
        ({"members": ("knn", "gpt")}, r"\['gpt'\] are not learned routers"),
        ({"members": ("knn", "ensemble")}, r"\['ensemble'\] are not learned routers"),
        ({"members": ("knn", "mf"), "weights": (1.0,)}, "one non-negative number per member"),
        ({"members": ("knn", "mf"), "weights": (1.0, -1.0)}, "one non-negative number per member"),
        ({"members": ("knn", "mf"), "weights": (0.0, 0.0)}, "one non-negative number per member"),
    ],
)
def test_bad_members_or_weights_are_refused(
    sample: tuple[OutcomeMatrix, OutcomeMatrix], params: dict[str, object], message: str
) -> None:
    train, _ = sample
    with pytest.raises(DataError, match=message):
        EnsembleRouter(**params, encoder=TfidfEncoder(svd_components=8)).fit(train)  # type: ignore[arg-type]
