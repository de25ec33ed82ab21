"""In-process GGUF models through xllamacpp (llama.cpp's server core, no HTTP): the embedded default backend.

One model instance answers one request at a time (a lock); blocking llama.cpp calls run in a worker
thread so the event loop stays free. Each answer records latency, time to first token, tokens/s, peak
RSS and the model file's size.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import resource
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from rankroute.backends.base import Backend, DecodingParams, Generation, stream_timings
from rankroute.backends.config import BackendConfig
from rankroute.backends.errors import BackendError, BackendUnsupported, ModelFileError
from rankroute.backends.local_models import CATALOGUE, gguf_tokenizer, resolve_local_model

logger = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import sys

    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


_UNLOADED: Any = object()
PROMPT_CACHE_RAM_MIB = 128
ENGINE_MODULES = {"xllamacpp": "xllamacpp", "llama-cpp-python": "llama_cpp"}
ENGINE_INSTALL_HINT = (
    "pip install 'rankroute[local]' (xllamacpp: a prebuilt wheel) or 'rankroute[llamacpp]' "
    "(llama-cpp-python: compiles llama.cpp on install)"
)


def local_engine(requested: str = "auto") -> str:
    """The engine an in-process model runs on: the one named, or for `auto` the first installed of
    xllamacpp (the prebuilt default) and llama-cpp-python."""
    if requested != "auto":
        return requested
    for engine, module in ENGINE_MODULES.items():
        if importlib.util.find_spec(module) is not None:
            return engine
    raise BackendError(
        "no in-process engine is installed: local models run on xllamacpp or llama-cpp-python",
        hint=ENGINE_INSTALL_HINT,
    )


class ContinuationScores(BaseModel):
    """Log-likelihoods of a question's options and what computing them took (tokens, time, memory)."""

    logliks: list[float]
    context_tokens: int = 0
    continuation_tokens: int = 0
    evaluated_tokens: int = Field(default=0, description="tokens the model ran: uncached context + options")
    compute_ms: float = Field(default=0.0, description="llama.cpp's own prompt + decode time")
    latency_ms: float = 0.0
    peak_rss_mb: float | None = None

    @property
    def tokens_per_s(self) -> float | None:
        """Tokens evaluated per second of model compute (prefill and forced decoding together)."""
        return self.evaluated_tokens * 1000 / self.compute_ms if self.compute_ms > 0 else None

    def measured(self) -> dict[str, float]:
        """What an outcome's `extra` records of scoring (nothing for backends that measure nothing)."""
        values = {
            "tokens_per_s": self.tokens_per_s,
            "evaluated_tokens": self.evaluated_tokens or None,
            "continuation_tokens": self.continuation_tokens or None,
            "compute_ms": round(self.compute_ms, 1) or None,
            "peak_rss_mb": self.peak_rss_mb,
        }
        return {key: value for key, value in values.items() if value is not None}


def default_threads(sample_s: float = 0.25) -> int:
    """The cores idle right now, at least one: llama.cpp's threads spin-wait for each other, so on a busy
    machine (load above the core count) two threads ran 6-10x slower than one here, while on an idle
    one two threads score and generate ~1.7-1.9x faster than one. Idle time is sampled from /proc/stat
    over `sample_s` (the 1-minute load average lags: right after a pip install it still read ~1 on an
    idle 2-core machine); where /proc/stat is missing, the load average decides."""
    cores = os.cpu_count() or 1
    try:
        before = _cpu_times()
        time.sleep(sample_s)
        after = _cpu_times()
        total, idle = after[0] - before[0], after[1] - before[1]
        busy = cores * (1.0 - idle / total) if total > 0 else 0.0
    except OSError:
        try:
            busy = os.getloadavg()[0]
        except OSError:
            return cores
    return max(1, min(cores, round(cores - busy)))


def _cpu_times() -> tuple[int, int]:
    """(all, idle + iowait) jiffies of every core together, from the first line of /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]


def _gbnf_literal(text: str) -> str:
    """A GBNF grammar accepting exactly `text` (JSON string escapes are valid GBNF escapes)."""
    return "root ::= " + json.dumps(text, ensure_ascii=False)


class LocalBackend(Backend):
    """A GGUF model loaded in this process; `config.local_model` (or `config.model`/name) picks the file."""

    def __init__(self, config: BackendConfig, *, model_path: Path | None = None) -> None:
        super().__init__(config.name)
        self.config = config
        self.model_ref = config.local_model or config.model or config.name
        spec = CATALOGUE.get(self.model_ref)
        self.supports_chat = spec.chat if spec is not None else True
        self._model_path = model_path
        self._server: Any = None
        self._load_lock = threading.Lock()
        self._call_lock = threading.Lock()
        self._tokenizer: Any = _UNLOADED

    @property
    def model_path(self) -> Path:
        if self._model_path is None:
            self._model_path = resolve_local_model(self.model_ref)
        return self._model_path

    def load(self) -> None:
        """Resolve, verify and load the model now (otherwise the first request does it)."""
        with self._load_lock:
            if self._server is not None:
                return
            path = self.model_path
            try:
                import xllamacpp
            except ImportError as error:
                raise BackendError(
                    "in-process models on engine xllamacpp need xllamacpp", hint=ENGINE_INSTALL_HINT
                ) from error
            try:
                self._server = xllamacpp.Server(self._params(xllamacpp, path, verbosity=0))
            except RuntimeError:
                try:  # load again with llama.cpp's log on, so stderr shows why (e.g. the failing tensor)
                    xllamacpp.Server(self._params(xllamacpp, path, verbosity=3))
                except RuntimeError as error:
                    raise ModelFileError(
                        f"llama.cpp could not load {path}: the file is corrupted, truncated or of an "
                        "unsupported architecture",
                        hint="re-download or reinstall the model; llama.cpp's log above names the problem",
                    ) from error
                raise

    def _params(self, xllamacpp: Any, path: Path, verbosity: int) -> Any:
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = self.config.n_ctx
        params.verbosity = verbosity
        # llama.cpp keeps past prompts' KV in RAM for reuse, up to 8 GiB by default: evaluation prompts
        # rarely repeat, so it only grew the process (SmolLM2: 620 -> 1,000 MB over 300 questions).
        # A question's options still share its context through the slot's own prompt cache.
        params.cache_ram_mib = PROMPT_CACHE_RAM_MIB
        threads = self.config.n_threads or default_threads()
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        return params

    async def aclose(self) -> None:
        with self._load_lock:
            self._server = None

    def _request(self, params: DecodingParams) -> dict[str, Any]:
        return {**params.request_fields(), "stream": True, "stream_options": {"include_usage": True}}

    def _refuse_chat_without_template(self) -> None:
        if not self.supports_chat:
            raise BackendUnsupported(
                f"local model {self.model_ref!r} is a base model without a chat template: chat is refused",
                hint="call complete() with a plain-text prompt, or pick an instruct model",
            )

    async def chat(self, messages: list[dict[str, str]], params: DecodingParams) -> Generation:
        self._refuse_chat_without_template()
        body = self._request(params) | {"messages": messages}
        if params.logprobs:
            body |= {"logprobs": True, "top_logprobs": params.top_logprobs or 1}
        return await asyncio.to_thread(self._generate, "chat", body)

    async def complete(self, prompt: str, params: DecodingParams) -> Generation:
        body = self._request(params) | {"prompt": prompt}
        if params.logprobs:
            body |= {"logprobs": params.top_logprobs or 1, "n_probs": params.top_logprobs or 1}
        return await asyncio.to_thread(self._generate, "completions", body)

    def _call(self, kind: str, body: dict[str, Any], on_chunk: Any = None) -> Any:
        self.load()
        handler = self._server.handle_chat_completions if kind == "chat" else self._server.handle_completions
        with self._call_lock:
            result = handler(body, on_chunk) if on_chunk is not None else handler(body)
        if isinstance(result, dict) and "error" in result:
            raise BackendError(f"local model {self.model_ref!r} rejected the request: {result['error']}")
        return result

    def _generate(self, kind: str, body: dict[str, Any]) -> Generation:
        chunks: list[dict[str, Any]] = []
        stamps: list[float] = []
        first_token: float | None = None
        last_token: float | None = None

        def on_chunk(chunk: dict[str, Any]) -> None:
            nonlocal first_token, last_token
            now = time.perf_counter()
            chunks.append(chunk)
            stamps.append(now)
            choices = chunk.get("choices") or []
            if choices:
                holder = (choices[0].get("delta") or {}) if kind == "chat" else choices[0]
                if holder.get("content" if kind == "chat" else "text"):
                    first_token = first_token or now
                    last_token = now

        self.load()
        start = time.perf_counter()
        self._call(kind, body, on_chunk)
        end = time.perf_counter()
        errors = [chunk["error"] for chunk in chunks if "error" in chunk]
        if errors:
            raise BackendError(f"local model {self.model_ref!r} failed: {errors[0]}")
        text_parts: list[str] = []
        logprobs: list[float] = []
        finish_reason = None
        usage: dict[str, Any] = {}
        timings: dict[str, Any] = {}
        for chunk in chunks:
            usage = chunk.get("usage") or usage
            timings = chunk.get("timings") or timings
            for choice in chunk.get("choices") or []:
                holder = (choice.get("delta") or {}) if kind == "chat" else choice
                text_parts.append(holder.get("content" if kind == "chat" else "text") or "")
                finish_reason = choice.get("finish_reason") or finish_reason
                content = (choice.get("logprobs") or {}).get("content") or []
                logprobs += [float(item["logprob"]) for item in content if "logprob" in item]
        return self._measured_generation(
            kind,
            "".join(text_parts),
            finish_reason=finish_reason,
            logprobs=logprobs,
            usage=usage,
            timings=timings,
            stamps=(start, first_token, last_token, end),
        )

    def _measured_generation(
        self,
        kind: str,
        text: str,
        *,
        finish_reason: str | None,
        logprobs: list[float],
        usage: dict[str, Any],
        timings: dict[str, Any],
        stamps: tuple[float, float | None, float | None, float],
    ) -> Generation:
        """The Generation of one in-process answer (any engine): the engine's own token usage, timings
        from perf_counter stamps (start, first token, last token, end), peak RSS and model file size."""
        input_tokens = int(usage.get("prompt_tokens", 0))
        output_tokens = int(usage.get("completion_tokens", 0))
        start, first_token, last_token, end = stamps
        measured = stream_timings(start, first_token, last_token, end, output_tokens)
        latency_ms = measured["latency_ms"] or 0.0
        raw = {
            "object": "chat.completion" if kind == "chat" else "text_completion",
            "model": self.name,
            "choices": [
                {"index": 0, "finish_reason": finish_reason}
                | ({"message": {"role": "assistant", "content": text}} if kind == "chat" else {"text": text})
            ],
            "usage": usage,
            "timings": timings,
        }
        return Generation(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            tokens_counted_by="usage",
            latency_ms=latency_ms,
            ttft_ms=measured["ttft_ms"],
            itl_ms=measured["itl_ms"],
            tokens_per_s=measured["tokens_per_s"],
            cost_usd=self.config.call_cost_usd(input_tokens, output_tokens, latency_ms),
            finish_reason=finish_reason,
            logprobs=logprobs or None,
            model=self.name,
            raw=raw,
            extra={
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "model_size_mb": round(self.model_path.stat().st_size / 1e6, 1),
                "prompt_per_second": timings.get("prompt_per_second"),
                "predicted_per_second": timings.get("predicted_per_second"),
            },
        )

    async def loglikelihood(self, context: str, continuations: list[str]) -> list[float]:
        """Log-prob of each continuation after `context` (see `score_continuations`)."""
        return (await self.score_continuations(context, continuations)).logliks

    async def score_continuations(self, context: str, continuations: list[str]) -> ContinuationScores:
        """Log-prob of each continuation after `context`, with what scoring them cost.

        llama.cpp returns no prompt log-probs, so each continuation is decoded under a grammar that admits
        exactly its canonical token ids (the split the model's tokenizer gives `context + continuation`,
        as lm-evaluation-harness takes it); each step's log-prob comes from the unconstrained
        distribution. The context's KV cache is reused across the continuations (llama.cpp's prompt
        cache keeps the common prefix), so a question's context is evaluated once, not once per option.
        """
        return await asyncio.to_thread(self._score_continuations, context, continuations)

    @property
    def tokenizer(self) -> Any | None:
        """The model's tokenizer for canonical continuation tokens; None: score by text grammar."""
        if self._tokenizer is _UNLOADED:
            with self._load_lock:
                if self._tokenizer is _UNLOADED:
                    self._tokenizer = gguf_tokenizer(self.model_path)
                    if self._tokenizer is None:
                        logger.warning(
                            "local model %s: no tokenizer (pip install transformers gguf); multiple "
                            "choice is scored on the model's own split of each answer, which can "
                            "differ from the canonical one",
                            self.model_ref,
                        )
        return self._tokenizer

    def continuation_tokens(self, context: str, continuation: str) -> list[int] | None:
        """Canonical ids of `continuation` after `context`: the tail of tokenize(context + continuation)
        when it extends tokenize(context), else tokenize(continuation) alone."""
        tokenizer = self.tokenizer
        if tokenizer is None:
            return None
        head = tokenizer.encode(context, add_special_tokens=False).ids
        whole = tokenizer.encode(context + continuation, add_special_tokens=False).ids
        if whole[: len(head)] == head and len(whole) > len(head):
            return list(whole[len(head) :])
        return list(tokenizer.encode(continuation, add_special_tokens=False).ids)

    def _score_continuations(self, context: str, continuations: list[str]) -> ContinuationScores:
        self.load()
        _ = self.tokenizer  # loading the model and tokenizer is not part of scoring this question
        started = time.perf_counter()
        scores = ContinuationScores(logliks=[])
        for continuation in continuations:
            if not continuation:
                scores.logliks.append(0.0)
                continue
            ids = self.continuation_tokens(context, continuation)
            if ids is not None:
                grammar = "root ::= " + " ".join(f"<[{token}]>" for token in ids)
                body = {"prompt": context, "grammar": grammar, "max_tokens": len(ids)}
            else:
                body = {"prompt": context, "grammar": _gbnf_literal(continuation)}
                body["max_tokens"] = len(continuation.encode()) + 4
            result = self._call("completions", body | {"temperature": 0.0, "n_probs": 1, "logprobs": 1})
            scores.logliks.append(self._forced_logprob(result, continuation, ids))
            usage, timings = result.get("usage") or {}, result.get("timings") or {}
            scores.context_tokens = int(usage.get("prompt_tokens", 0))
            scores.continuation_tokens += int(usage.get("completion_tokens", 0))
            scores.evaluated_tokens += int(timings.get("prompt_n", 0)) + int(timings.get("predicted_n", 0))
            scores.compute_ms += float(timings.get("prompt_ms", 0.0)) + float(
                timings.get("predicted_ms", 0.0)
            )
        scores.latency_ms = (time.perf_counter() - started) * 1000
        scores.peak_rss_mb = round(peak_rss_mb(), 1)
        return scores

    def _forced_logprob(self, result: dict[str, Any], continuation: str, ids: list[int] | None) -> float:
        try:
            steps = result["choices"][0]["logprobs"]["content"]
        except (KeyError, IndexError, TypeError) as error:
            raise BackendUnsupported(f"local model {self.model_ref!r} returned no log-probs") from error
        if ids is not None:
            got = [int(step["id"]) for step in steps[: len(ids)]]
            if got != ids:
                raise BackendError(
                    f"local model {self.model_ref!r} decoded {got} instead of the forced tokens {ids}",
                    hint="raise n_ctx if the context is long",
                )
            return float(sum(float(step["logprob"]) for step in steps[: len(ids)]))
        target = len(continuation.encode())
        total, covered = 0.0, 0
        for step in steps:
            if covered >= target:
                break  # the end-of-generation token after the forced text is not part of it
            total += float(step["logprob"])
            covered += len(step.get("bytes") or step.get("token", "").encode())
        if covered < target:
            raise BackendError(
                f"local model {self.model_ref!r} stopped before finishing the forced continuation "
                f"({covered}/{target} bytes)",
                hint="raise n_ctx if the context is long",
            )
        return total
