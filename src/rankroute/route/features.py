"""What learned routers see of a prompt: its question (few-shot boilerplate stripped), its task, its length.

`LearnedRouter` holds the parts every learned router shares: the prompt encoder, a task detector (the
dataset a prompt comes from is the strongest routing signal, and a served prompt carries no label), and
a per-model regression of cost on prompt length.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit, softmax
from threadpoolctl import threadpool_limits

from rankroute.data.errors import DataError
from rankroute.data.matrix import OutcomeMatrix
from rankroute.route.base import Prompts, Router, prompt_texts
from rankroute.route.embeddings import PromptEncoder, default_encoder

_SOLVED_EXAMPLE = re.compile(r"Answer:[ \t]*\n?[ \t]*[A-Za-z0-9][^\n]{0,40}\n\s*\n")


def question_text(text: str, max_chars: int = 1000) -> str:
    """The part of a prompt that differs between prompts: the text after the last solved few-shot example.

    Few-shot prompts (ARC, Winogrande in RouterBench) repeat the same worked examples before the question,
    which would dominate a whole-prompt embedding. Zero-shot prompts come back unchanged (clipped).
    """
    ends = [m.end() for m in _SOLVED_EXAMPLE.finditer(text)]
    tail = text[ends[-1] :] if ends else text
    return tail.strip()[:max_chars] or text[:max_chars]


def prompt_lengths(texts: Sequence[str]) -> np.ndarray:
    return np.array([len(t) for t in texts], dtype=np.float64)


def char_wb_trigram_codes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(text index, uint64 code) of every `char_wb` 3-gram of the lowercased texts, vectorised.

    scikit-learn's char_wb analyzer pads each word with one space and slices it, one Python step per
    character. Here every text becomes " word1  word2 ... " (two spaces between words) and the whole
    batch one code-point array; the three code points of a 3-gram (< 2**21 each) pack into one integer.
    3-grams spanning two words or two texts contain two spaces, so they match no fitted vocabulary entry.
    """
    padded = [" " + "  ".join(t.lower().split()) + " " for t in texts]
    points = np.frombuffer("".join(padded).encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(
        np.uint64
    )
    codes = (points[:-2] << np.uint64(42)) | (points[1:-1] << np.uint64(21)) | points[2:]
    starts = np.cumsum([0, *(len(p) for p in padded[:-1])])
    rows = np.searchsorted(starts, np.arange(len(codes)), side="right") - 1
    return rows, codes


def trigram_code(gram: str) -> int:
    """The code char_wb_trigram_codes gives a 3-character string."""
    a, b, c = (ord(ch) for ch in gram)
    return (a << 42) | (b << 21) | c


class TaskDetector:
    """Predicts a prompt's dataset from its text (character n-grams of its start and end)."""

    def __init__(self, edge_chars: int = 200) -> None:
        self.edge_chars = edge_chars

    def _edges(self, texts: Sequence[str]) -> list[str]:
        n = self.edge_chars
        return [t[:n] + " \n " + t[-n:] if len(t) > 2 * n else t for t in texts]

    def fit(self, texts: Sequence[str], datasets: Sequence[str]) -> TaskDetector:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.tasks_ = sorted({str(d) for d in datasets})
        if len(self.tasks_) > 1:
            self._vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3), max_features=3000)
            features = self._vectorizer.fit_transform(self._edges(texts))
            self._classifier = LogisticRegression(C=10.0, max_iter=500).fit(
                features, [str(d) for d in datasets]
            )
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n, n_tasks) probabilities, columns in the order of tasks_.

        Computes what `classifier.predict_proba(vectorizer.transform(...))` computes, from the fitted
        vocabulary, idf and coefficients: without scikit-learn's per-call input validation (~80 % of a
        single routing decision) and with the 3-grams counted in numpy, not per character in Python.
        """
        if len(self.tasks_) == 1:
            return np.ones((len(texts), 1))
        vocabulary_codes, vocabulary_columns, idf, coef, intercept = self._scoring_parts()
        rows, codes = char_wb_trigram_codes(self._edges(texts))
        found = np.minimum(np.searchsorted(vocabulary_codes, codes), len(vocabulary_codes) - 1)
        hit = vocabulary_codes[found] == codes
        n_columns = len(idf)
        cells, counts = np.unique(rows[hit] * n_columns + vocabulary_columns[found[hit]], return_counts=True)
        cell_rows, cell_columns = np.divmod(cells, n_columns)
        weights = counts * idf[cell_columns]  # tf-idf of each (text, 3-gram), then l2-normalised per text
        norms = np.sqrt(np.bincount(cell_rows, weights=weights**2, minlength=len(texts)))
        weights /= norms[cell_rows]
        logits = np.tile(intercept, (len(texts), 1))
        for task, task_coef in enumerate(coef):
            logits[:, task] += np.bincount(
                cell_rows, weights=weights * task_coef[cell_columns], minlength=len(texts)
            )
        if coef.shape[0] == 1:  # binary: scikit-learn's [1 - sigmoid, sigmoid]
            positive = expit(logits[:, 0])
            return np.stack([1.0 - positive, positive], axis=1)
        return np.asarray(softmax(logits, axis=1))

    def _scoring_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Sorted vocabulary codes and their columns, idf, coefficients in tasks_ order (built once)."""
        parts: tuple[np.ndarray, ...] | None = getattr(self, "_parts", None)
        if parts is None:
            classes = list(self._classifier.classes_)
            coef = np.asarray(self._classifier.coef_, dtype=np.float64)
            intercept = np.asarray(self._classifier.intercept_, dtype=np.float64)
            if coef.shape[0] > 1:
                order = [classes.index(t) for t in self.tasks_]
                coef, intercept = coef[order], intercept[order]
            vocabulary = self._vectorizer.vocabulary_
            codes = np.array([trigram_code(g) for g in vocabulary], dtype=np.uint64)
            columns = np.fromiter(vocabulary.values(), dtype=np.intp, count=len(vocabulary))
            by_code = np.argsort(codes)
            parts = (codes[by_code], columns[by_code], self._vectorizer.idf_, coef, intercept)
            self._parts = parts
        return parts  # type: ignore[return-value]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_parts", None)  # derived: rebuilt from the fitted vectorizer and classifier on load
        return state


class LengthCostModel:
    """Per model: cost = a + b * prompt chars, fitted per detected task on the training outcomes.

    Costs scale with prompt length (input tokens) and differ by task (output length); where a model has
    fewer than `min_points` known costs for a task it falls back to its mean cost.
    """

    def __init__(self, min_points: int = 5) -> None:
        self.min_points = min_points

    def fit(self, lengths: np.ndarray, tasks: np.ndarray, cost: np.ndarray) -> LengthCostModel:
        n_tasks = int(tasks.max()) + 1 if len(tasks) else 1
        n_models = cost.shape[1]
        self.coef_ = np.zeros((n_tasks, n_models, 2))
        model_means = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in cost.T])
        self.coef_[:, :, 0] = model_means
        for task in range(n_tasks):
            rows = tasks == task
            for j in range(n_models):
                known = rows & np.isfinite(cost[:, j])
                if known.sum() >= self.min_points and np.ptp(lengths[known]) > 0:
                    slope, intercept = np.polyfit(lengths[known], cost[known, j], 1)
                    self.coef_[task, j] = (intercept, slope)
                elif known.any():
                    self.coef_[task, j, 0] = cost[known, j].mean()
        return self

    def predict(self, lengths: np.ndarray, task_proba: np.ndarray) -> np.ndarray:
        per_task = self.coef_[None, :, :, 0] + self.coef_[None, :, :, 1] * lengths[:, None, None]
        return np.clip(np.einsum("nt,ntm->nm", task_proba, per_task), 0.0, None)


class LearnedRouter(Router):
    """Base of routers that learn from prompt features: embedding of the question + detected task.

    Subclasses implement _fit_quality(features, quality) and predict_quality; cost prediction is shared.
    """

    encoder: PromptEncoder | None
    task_weight: float

    def _fit(self, outcomes: OutcomeMatrix) -> None:
        texts = list(outcomes.texts)
        self.encoder_ = self.encoder if self.encoder is not None else default_encoder()
        self.encoder_.fit([question_text(t) for t in texts])
        self.task_detector_ = TaskDetector().fit(texts, [str(d) for d in outcomes.datasets])
        task_ids = np.array([self.task_detector_.tasks_.index(str(d)) for d in outcomes.datasets])
        self.cost_model_ = LengthCostModel().fit(prompt_lengths(texts), task_ids, outcomes.cost)
        self._memo: tuple[tuple[str, ...], np.ndarray, np.ndarray] | None = None
        features = self._features_of(texts, np.eye(len(self.task_detector_.tasks_))[task_ids])
        # small dense problems: one BLAS thread avoids oversubscribing the cores (much faster under load)
        with threadpool_limits(limits=1, user_api="blas"):
            self._fit_quality(features, outcomes.quality, outcomes)

    def _fit_quality(self, features: np.ndarray, quality: np.ndarray, outcomes: OutcomeMatrix) -> None:
        raise NotImplementedError

    def _features_of(self, texts: Sequence[str], task_proba: np.ndarray) -> np.ndarray:
        embedded = self.encoder_.encode([question_text(t) for t in texts])
        return np.hstack([embedded, self.task_weight * task_proba]).astype(np.float32)

    def features(self, prompts: Prompts) -> tuple[np.ndarray, np.ndarray]:
        """(features, task probabilities) of prompts; the last call is memoised (route asks twice)."""
        self._check_fitted()
        texts = tuple(prompt_texts(prompts))
        if self._memo is not None and self._memo[0] == texts:
            return self._memo[1], self._memo[2]
        task_proba = self.task_detector_.predict_proba(texts)
        features = self._features_of(texts, task_proba)
        self._memo = (texts, features, task_proba)
        return features, task_proba

    def predict_cost(self, prompts: Prompts) -> np.ndarray:
        self._check_fitted()
        _, task_proba = self.features(prompts)
        return self.cost_model_.predict(prompt_lengths(prompt_texts(prompts)), task_proba)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_memo"] = None
        return state


def finite_quality(quality: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(quality with NaN as 0, mask of known cells); refuses quality outside [0, 1]."""
    known = np.isfinite(quality)
    values = np.where(known, quality, 0.0)
    if (values < 0).any() or (values > 1).any():
        raise DataError("learned routers need quality in [0, 1]; rescale the metric first")
    return values, known
