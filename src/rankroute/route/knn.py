"""k-nearest-neighbour router: a prompt's expected quality per model is that of its closest neighbours."""

from __future__ import annotations

import numpy as np

from rankroute.data.matrix import OutcomeMatrix
from rankroute.route.base import Prompts
from rankroute.route.embeddings import PromptEncoder
from rankroute.route.features import LearnedRouter, finite_quality

SIMILARITY_BLOCK = 4_000_000  # cells of one query block's similarity matrix (16 MB as float32)


class KNNRouter(LearnedRouter):
    """Cosine k-NN on question embeddings (+ detected task), as in RouterBench's kNN router.

    Predicted quality = similarity-weighted mean of the neighbours' quality per model, shrunk towards the
    model's mean on the prompt's task by `prior_weight` pseudo-neighbours (keeps small k from overfitting).
    """

    def __init__(
        self,
        n_neighbors: int = 40,
        weighted: bool = True,
        prior_weight: float = 5.0,
        task_weight: float = 1.0,
        encoder: PromptEncoder | None = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weighted = weighted
        self.prior_weight = prior_weight
        self.task_weight = task_weight
        self.encoder = encoder

    def _fit_quality(self, features: np.ndarray, quality: np.ndarray, outcomes: OutcomeMatrix) -> None:
        values, known = finite_quality(quality)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        self.train_features_ = (features / np.maximum(norms, 1e-12)).astype(np.float32)
        self.train_quality_ = values.astype(np.float32)
        self.train_known_ = known.astype(np.float32)
        task_proba = self.task_detector_.predict_proba(list(outcomes.texts))
        task_ids = task_proba.argmax(axis=1)
        self.task_means_ = np.stack(
            [
                np.nan_to_num(
                    np.nanmean(np.where(known[task_ids == t], values[task_ids == t], np.nan), axis=0)
                )
                if (task_ids == t).any()
                else values.mean(axis=0)
                for t in range(task_proba.shape[1])
            ]
        )

    def predict_quality(self, prompts: Prompts) -> np.ndarray:
        features, task_proba = self.features(prompts)
        queries = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        queries = queries.astype(np.float32, copy=False)
        # Queries go in blocks so the similarity matrix (and argpartition's index array of the same
        # shape) stays near SIMILARITY_BLOCK cells however many prompts are scored at once.
        rows = max(1, SIMILARITY_BLOCK // max(1, len(self.train_features_)))
        single = len(queries) <= 8  # a single decision: einsum skips BLAS thread start-up, much faster here
        summed_parts, weight_parts, mean_weight_parts = [], [], []
        for start in range(0, len(queries), rows):
            block = queries[start : start + rows]
            if single:
                similarity = np.einsum("qd,nd->qn", block, self.train_features_)
            else:
                similarity = block @ self.train_features_.T
            k = min(self.n_neighbors, similarity.shape[1])
            nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            sims = np.take_along_axis(similarity, nearest, axis=1)
            weights = np.clip(sims, 1e-6, None) if self.weighted else np.ones_like(sims)
            cell_weights = weights[:, :, None] * self.train_known_[nearest]
            summed_parts.append((cell_weights * self.train_quality_[nearest]).sum(axis=1))
            weight_parts.append(cell_weights.sum(axis=1))
            mean_weight_parts.append(weights.mean(axis=1, keepdims=True))
        summed, cell_total = np.concatenate(summed_parts), np.concatenate(weight_parts)
        prior = task_proba @ self.task_means_
        shrink = self.prior_weight * np.concatenate(mean_weight_parts)
        return np.asarray((summed + shrink * prior) / (cell_total + shrink))
