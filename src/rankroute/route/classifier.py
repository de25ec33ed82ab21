"""Classifier router: one calibrated "will this model answer correctly?" classifier per model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rankroute.data.matrix import OutcomeMatrix
from rankroute.route.base import Prompts
from rankroute.route.embeddings import PromptEncoder
from rankroute.route.features import LearnedRouter, finite_quality


class ClassifierRouter(LearnedRouter):
    """Per model, P(quality >= threshold | question embedding, task), by logistic regression or an MLP.

    Routing trades these probabilities against cost, so their level matters. Logistic regression's own
    probabilities are left as they are by default: cross-validated sigmoid calibration, fitted on the
    scores of all tasks pooled, pulled each task's level towards the pooled one (on RouterBench's MBPP it
    predicted 0.37 for a model right 0.66 of the time) and cost AIQ on every task (5 re-splits of the
    seed-0 training prompts, AIQ - Zero over all tasks: +0.030 uncalibrated vs +0.009 sigmoid). The MLP,
    over-confident without it, is calibrated by default (`mlp` in the registry). A model whose training
    labels are all one class predicts that class's rate.
    """

    def __init__(
        self,
        kind: Literal["logistic", "mlp"] = "logistic",
        C: float = 0.5,
        hidden_units: int = 64,
        calibration: Literal["sigmoid", "isotonic"] | None = None,
        quality_threshold: float = 0.5,
        task_weight: float = 1.0,
        seed: int = 0,
        encoder: PromptEncoder | None = None,
    ) -> None:
        self.kind = kind
        self.C = C
        self.hidden_units = hidden_units
        self.calibration = calibration
        self.quality_threshold = quality_threshold
        self.task_weight = task_weight
        self.seed = seed
        self.encoder = encoder

    def _estimator(self) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier

        if self.kind == "mlp":
            return MLPClassifier(
                hidden_layer_sizes=(self.hidden_units,),
                alpha=1.0 / self.C,
                max_iter=300,
                early_stopping=True,
                random_state=self.seed,
            )
        return LogisticRegression(C=self.C, max_iter=1000)

    def _fit_quality(self, features: np.ndarray, quality: np.ndarray, outcomes: OutcomeMatrix) -> None:
        from sklearn.calibration import CalibratedClassifierCV

        values, known = finite_quality(quality)
        self.classifiers_: list[Any] = []
        self.base_rates_ = np.zeros(quality.shape[1])
        for j in range(quality.shape[1]):
            rows = known[:, j]
            labels = (values[rows, j] >= self.quality_threshold).astype(int)
            self.base_rates_[j] = labels.mean() if len(labels) else 0.0
            minority = min(labels.sum(), len(labels) - labels.sum())
            if minority == 0:
                self.classifiers_.append(None)
                continue
            estimator = self._estimator()
            if self.calibration is not None and minority >= 3:
                estimator = CalibratedClassifierCV(
                    estimator, method=self.calibration, cv=min(3, int(minority))
                )
            self.classifiers_.append(estimator.fit(features[rows], labels))

        self.linear_ = LinearProbabilities.from_classifiers(self.classifiers_, self.base_rates_)

    def predict_quality(self, prompts: Prompts) -> np.ndarray:
        features, _ = self.features(prompts)
        if self.linear_ is not None:
            return self.linear_.predict(features)
        columns = [
            np.full(len(features), rate) if clf is None else clf.predict_proba(features)[:, 1]
            for clf, rate in zip(self.classifiers_, self.base_rates_, strict=True)
        ]
        return np.clip(np.column_stack(columns), 0.0, 1.0)


@dataclass
class LinearProbabilities:
    """Every model's logistic classifier, and each of its calibrated folds, scored as one matrix product.

    scikit-learn answers one prompt through ~35 `predict_proba` calls (11 models x 3 calibration folds),
    each validating its input: ~110 ms a decision. The same arithmetic on the fitted coefficients takes
    well under a millisecond and gives the same probabilities (to 1e-6: scikit-learn keeps float32 features
    in float32, this scores in float64; tested): a fold's score
    f = x.w + b goes through its calibrator (sigmoid: expit(-(a f + c)); isotonic: clipped linear
    interpolation; an uncalibrated model: expit(f)), and a model's probability is its folds' mean.
    """

    weights: np.ndarray  # (n_features, n_folds): every fold of every model
    intercepts: np.ndarray  # (n_folds,)
    slopes: np.ndarray  # (n_folds,) sigmoid calibration a (NaN for isotonic folds)
    offsets: np.ndarray  # (n_folds,) sigmoid calibration c
    isotonic: dict[int, tuple[np.ndarray, np.ndarray]]  # fold -> (thresholds, values)
    fold_mean: np.ndarray  # (n_folds, n_models): 1/k where fold belongs to a model with k folds
    constant: np.ndarray  # (n_models,) base rate of models without a classifier, else 0

    @classmethod
    def from_classifiers(cls, classifiers: list[Any], base_rates: np.ndarray) -> LinearProbabilities | None:
        """None when a classifier is not (a calibrated) logistic regression: scikit-learn scores it."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.linear_model import LogisticRegression

        weights, intercepts, slopes, offsets, owners = [], [], [], [], []
        isotonic: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        constant = np.zeros(len(classifiers))
        for j, clf in enumerate(classifiers):
            if clf is None:
                constant[j] = base_rates[j]
                continue
            if isinstance(clf, LogisticRegression):
                folds = [(clf, None)]
            elif isinstance(clf, CalibratedClassifierCV) and clf.method in ("sigmoid", "isotonic"):
                folds = [(c.estimator, c.calibrators[0]) for c in clf.calibrated_classifiers_]
            else:
                return None
            for estimator, calibrator in folds:
                if not isinstance(estimator, LogisticRegression) or list(estimator.classes_) != [0, 1]:
                    return None
                weights.append(estimator.coef_[0])
                intercepts.append(estimator.intercept_[0])
                owners.append(j)
                if calibrator is None:  # expit(f) = expit(-(-1 f + 0))
                    slopes.append(-1.0)
                    offsets.append(0.0)
                elif hasattr(calibrator, "a_"):
                    slopes.append(float(calibrator.a_))
                    offsets.append(float(calibrator.b_))
                else:
                    slopes.append(np.nan)
                    offsets.append(np.nan)
                    thresholds = np.asarray(calibrator.X_thresholds_, dtype=np.float64)
                    isotonic[len(owners) - 1] = (thresholds, np.asarray(calibrator.y_thresholds_))
        fold_mean = np.zeros((len(owners), len(classifiers)))
        for fold, j in enumerate(owners):
            fold_mean[fold, j] = 1.0 / owners.count(j)
        return cls(
            # no fold at all (every model always or never right): predict answers the base rates
            weights=np.array(weights, dtype=np.float64).T if owners else np.zeros((0, 0)),
            intercepts=np.array(intercepts, dtype=np.float64),
            slopes=np.array(slopes),
            offsets=np.array(offsets),
            isotonic=isotonic,
            fold_mean=fold_mean,
            constant=constant,
        )

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(n_prompts, n_models) probability that each model answers correctly."""
        from scipy.special import expit

        if not self.intercepts.size:
            return np.tile(self.constant, (len(features), 1))
        scores = np.asarray(features, dtype=np.float64) @ self.weights + self.intercepts
        with np.errstate(invalid="ignore"):
            proba = expit(-(self.slopes * scores + self.offsets))
        for fold, (thresholds, values) in self.isotonic.items():
            proba[:, fold] = np.interp(scores[:, fold], thresholds, values)
        return np.clip(proba @ self.fold_mean + self.constant, 0.0, 1.0)
