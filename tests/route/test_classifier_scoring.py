"""The classifier router's compiled scorer gives scikit-learn's probabilities, for every calibration
(to float32 precision: scikit-learn scores float32 features in float32, the compiled scorer in float64)."""

from __future__ import annotations

import numpy as np
import pytest
from routing_data import routerbench_matrix

from rankroute.data.matrix import OutcomeMatrix
from rankroute.route.classifier import ClassifierRouter
from rankroute.route.embeddings import TfidfEncoder
from rankroute.route.split import split_by_prompt


@pytest.mark.parametrize("calibration", ["sigmoid", "isotonic", None])
def test_compiled_probabilities_equal_scikit_learns(calibration: str | None) -> None:
    matrix = routerbench_matrix().complete_rows()
    split = split_by_prompt(matrix, test_size=0.5, seed=3)
    train, test = split.apply(matrix)
    train = train.subset(np.arange(600))
    router = ClassifierRouter(calibration=calibration, encoder=TfidfEncoder()).fit(train)  # type: ignore[arg-type]
    assert router.linear_ is not None
    features, _ = router.features(test)
    expected = np.column_stack(
        [
            np.full(len(features), rate) if clf is None else clf.predict_proba(features)[:, 1]
            for clf, rate in zip(router.classifiers_, router.base_rates_, strict=True)
        ]
    )
    # isotonic steps magnify the float32 rounding of a score (~1e-7) by their slope
    tolerance = 1e-4 if calibration == "isotonic" else 1e-6
    np.testing.assert_allclose(router.predict_quality(test), np.clip(expected, 0, 1), rtol=0, atol=tolerance)
    # one prompt at a time (the gateway's case) gives the same rows
    one = router.predict_quality(list(test.texts[:3]))
    np.testing.assert_allclose(one, router.predict_quality(test)[:3], rtol=0, atol=1e-12)


def test_mlp_classifiers_are_scored_by_scikit_learn() -> None:
    matrix = routerbench_matrix().complete_rows().subset(np.arange(300))
    router = ClassifierRouter(kind="mlp", calibration=None, encoder=TfidfEncoder()).fit(matrix)  # type: ignore[arg-type]
    assert router.linear_ is None
    quality = router.predict_quality(matrix)
    assert quality.shape == (300, len(matrix.models))
    assert ((quality >= 0) & (quality <= 1)).all()


def test_models_always_right_or_always_wrong_get_their_base_rates() -> None:
    """The demo's case: a model that knows every answer and one that never does leave no classifier to fit."""
    n = 12
    matrix = OutcomeMatrix(
        prompt_ids=np.array([f"p{i}" for i in range(n)], dtype=object),
        texts=[f"question {i} about topic {i % 3}" for i in range(n)],
        datasets=np.array(["demo"] * n, dtype=object),
        models=["knows-all", "says-a"],
        quality=np.c_[np.ones(n), np.zeros(n)],
        cost=np.c_[np.full(n, 0.001), np.full(n, 0.00001)],
    )
    router = ClassifierRouter(encoder=TfidfEncoder()).fit(matrix)  # type: ignore[arg-type]
    np.testing.assert_array_equal(router.predict_quality(matrix), np.c_[np.ones(n), np.zeros(n)])
    assert list(router.route(matrix, np.inf)) == ["knows-all"] * n
