"""The classifier router's compiled scorer gives scikit-learn's probabilities, for every calibration
(to float32 precision: scikit-learn scores float32 features in float32, the compiled scorer in float64)."""

from __future__ import annotations

import numpy as np
import pytest
from routing_data import routerbench_matrix

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
