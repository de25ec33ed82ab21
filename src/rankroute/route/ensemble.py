"""Ensemble router: the mean of several learned routers' predicted quality per (prompt, model).

Each member errs differently (k-NN is local and noisy, mf a low-rank fit shared by all models, the
classifier one linear fit per model); averaging their probabilities is better calibrated than any one, and
routing trades those probabilities against cost. The default members were chosen on the RouterBench
subset by re-splitting the seed-0 training prompts only (5 random 70/30 splits, AIQ - Zero): knn + mf +
classifier +0.032 over all tasks and ahead on each (ARC-C +0.008, MBPP +0.021, Winogrande +0.004), against
knn + mf + mlp (the previous default) +0.028 and mf + classifier +0.030 (docs/benchmarks.md, "Routing
evaluation").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rankroute.data.errors import DataError
from rankroute.data.matrix import OutcomeMatrix
from rankroute.route.base import Prompts, Router
from rankroute.route.embeddings import PromptEncoder


class EnsembleRouter(Router):
    """Weighted mean of member routers' predict_quality; cost from the first member.

    members: registry names of learned routers (see rankroute.route.registry), each built with its defaults
    and the shared encoder. weights: one per member (normalised), or None for equal weights.
    """

    def __init__(
        self,
        members: Sequence[str] = ("knn", "mf", "classifier"),
        weights: Sequence[float] | None = None,
        encoder: PromptEncoder | None = None,
    ) -> None:
        self.members = tuple(members)
        self.weights = None if weights is None else tuple(float(w) for w in weights)
        self.encoder = encoder

    def _fit(self, outcomes: OutcomeMatrix) -> None:
        from rankroute.route.registry import LEARNED_ROUTERS  # the registry lists this router too

        if not self.members:
            raise DataError("an ensemble needs at least one member router")
        unknown = [m for m in self.members if m not in LEARNED_ROUTERS or m == "ensemble"]
        if unknown:
            raise DataError(
                f"ensemble members {unknown} are not learned routers",
                hint=f"choose from: {', '.join(n for n in LEARNED_ROUTERS if n != 'ensemble')}",
            )
        weights = np.ones(len(self.members)) if self.weights is None else np.asarray(self.weights)
        if weights.shape != (len(self.members),) or (weights < 0).any() or not weights.sum() > 0:
            raise DataError(f"ensemble weights {self.weights} must be one non-negative number per member")
        self.weights_ = weights / weights.sum()
        self.routers_ = [LEARNED_ROUTERS[m](encoder=self.encoder).fit(outcomes) for m in self.members]

    def predict_quality(self, prompts: Prompts) -> np.ndarray:
        self._check_fitted()
        predictions = [router.predict_quality(prompts) for router in self.routers_]
        return np.asarray(np.tensordot(self.weights_, np.stack(predictions), axes=1))

    def predict_cost(self, prompts: Prompts) -> np.ndarray:
        self._check_fitted()
        return self.routers_[0].predict_cost(prompts)
