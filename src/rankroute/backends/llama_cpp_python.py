"""In-process GGUF models through llama-cpp-python (`llama_cpp.Llama`): the second engine of `kind: local`.

PyPI has llama-cpp-python only as source (it compiles llama.cpp on install), so xllamacpp's prebuilt
wheel stays the default and this engine runs "when present" (`engine: llama-cpp-python`, or `auto` when
xllamacpp is absent). The face and the measurements are LocalBackend's: the GGUF's own chat template,
completions, time to first token and inter-token latency, exact token usage, log-probs, and
multiple-choice log-likelihoods on the canonical answer tokens.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import log_softmax

from rankroute.backends.base import DecodingParams, Generation
from rankroute.backends.config import BackendConfig
from rankroute.backends.errors import BackendError, BackendUnsupported, ModelFileError
from rankroute.backends.local import ContinuationScores, LocalBackend, default_threads, peak_rss_mb

INSTALL_HINT = (
    "pip install 'rankroute[llamacpp]' (compiles llama.cpp: minutes), or use engine xllamacpp "
    "(pip install 'rankroute[local]', a prebuilt wheel)"
)


class LlamaCppPythonBackend(LocalBackend):
    """A GGUF model loaded by llama-cpp-python in this process: LocalBackend on another engine.

    The model is opened with `logits_all=True`: llama-cpp-python gives log-probs only then, and it makes
    multiple-choice scoring exact and simple (one forward pass over context + option, then the
    log-softmax at each option position). One call at a time per model (a lock), on a worker thread.
    """

    def __init__(self, config: BackendConfig, *, model_path: Path | None = None) -> None:
        super().__init__(config, model_path=model_path)
        self._llm: Any = None
        self._chat_formatter: Any = None
        self._scored_context: list[int] | None = None  # the context whose KV cache scoring left in place

    def load(self) -> None:
        """Resolve, verify and load the model now (otherwise the first request does it)."""
        with self._load_lock:
            if self._llm is not None:
                return
            path = self.model_path
            try:
                import llama_cpp
            except ImportError as error:
                raise BackendError("engine llama-cpp-python is not installed", hint=INSTALL_HINT) from error
            try:
                llm = self._open(llama_cpp, path, verbose=False)
            except ValueError:
                try:  # open again with llama.cpp's log on, so stderr shows why (e.g. the failing tensor)
                    self._open(llama_cpp, path, verbose=True)
                except ValueError as error:
                    raise ModelFileError(
                        f"llama-cpp-python could not load {path}: the file is corrupted, truncated or of an "
                        "unsupported architecture",
                        hint="re-download or reinstall the model; llama.cpp's log above names the problem",
                    ) from error
                raise
            self._chat_formatter = self._gguf_chat_formatter(llama_cpp, llm)
            self._llm, self._scored_context = llm, None

    def _open(self, llama_cpp: Any, path: Path, *, verbose: bool) -> Any:
        threads = self.config.n_threads or default_threads()
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=self.config.n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=True,
            # as llama.cpp's server (and so xllamacpp) runs it: without flash attention the context's
            # logits differ from xllamacpp's by up to 0.15 nats on ARC, with it by under 0.001
            flash_attn=True,
            verbose=verbose,
        )

    @staticmethod
    def _gguf_chat_formatter(llama_cpp: Any, llm: Any) -> Any | None:
        """The GGUF's own Jinja chat template (as llama.cpp's server applies it), or None without one.

        llama-cpp-python would swap a template it recognises for its built-in format (SmolLM2's differs
        from built-in ChatML by a default system prompt), so the template is applied here directly."""
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None

        def token_text(token: int) -> str:
            if token < 0:
                return ""
            return str(llm.detokenize([token], special=True).decode("utf-8", errors="ignore"))

        return llama_cpp.llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=token_text(llm.token_eos()),
            bos_token=token_text(llm.token_bos()),
            stop_token_ids=[llm.token_eos()],
        )

    async def aclose(self) -> None:
        with self._load_lock:
            self._llm = None  # a call still running holds its own reference; the model is freed after it

    async def chat(self, messages: list[dict[str, str]], params: DecodingParams) -> Generation:
        self._refuse_chat_without_template()
        return await asyncio.to_thread(self._chat, messages, params)

    async def complete(self, prompt: str, params: DecodingParams) -> Generation:
        return await asyncio.to_thread(self._complete, prompt, params)

    def _tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        """llama.cpp's own tokenization (special tokens parsed, as the prompts of llama.cpp's server)."""
        self.load()
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def _chat(self, messages: list[dict[str, str]], params: DecodingParams) -> Generation:
        self.load()
        if self._chat_formatter is None:
            raise BackendUnsupported(
                f"local model {self.model_ref!r} has no chat template in its GGUF: chat is refused",
                hint="call complete() with a plain-text prompt, or pick an instruct model",
            )
        try:
            rendered = self._chat_formatter(messages=messages)
        except Exception as error:  # the template's raise_exception and Jinja errors name the problem
            raise BackendError(
                f"local model {self.model_ref!r}: its chat template refused the messages: {error}",
                hint="check the roles and the order of the messages",
            ) from error
        prompt = self._tokenize(rendered.prompt, add_bos=not rendered.added_special)
        stop = [*(params.stop or []), *([rendered.stop] if isinstance(rendered.stop, str) else rendered.stop)]
        criteria = list(rendered.stopping_criteria or [])
        return self._generate_tokens("chat", prompt, params, stop, criteria)

    def _complete(self, prompt: str, params: DecodingParams) -> Generation:
        tokens = self._tokenize(prompt, add_bos=True) or [self._llm.token_bos()]
        return self._generate_tokens("completions", tokens, params, list(params.stop or []), [])

    def _generate_tokens(
        self, kind: str, prompt: list[int], params: DecodingParams, stop: list[str], criteria: list[Any]
    ) -> Generation:
        """Generate after `prompt` (token ids, so usage counts exactly what the model read).

        llama-cpp-python's stream carries no usage, so the answer is taken whole and each token is
        stamped by a stopping criterion, which llama-cpp-python calls as each token is sampled."""
        from llama_cpp import StoppingCriteriaList, llama_perf_context, llama_perf_context_reset

        stamps: list[float] = []

        def stamp(input_ids: Any, logits: Any) -> bool:
            stamps.append(time.perf_counter())
            return False

        request: dict[str, Any] = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stop": stop,
            "seed": params.seed,
            "stopping_criteria": StoppingCriteriaList([stamp, *criteria]),
        }
        if params.top_k is not None:
            request["top_k"] = params.top_k
        if params.logprobs:
            request["logprobs"] = params.top_logprobs or 1
        llm = self._llm
        with self._call_lock:
            self._scored_context = None  # generating overwrites the KV cache scoring keeps
            llama_perf_context_reset(llm.ctx)
            start = time.perf_counter()
            try:
                result = llm.create_completion(prompt=prompt, **request)
            except (ValueError, RuntimeError) as error:
                raise BackendError(
                    f"local model {self.model_ref!r} rejected the request: {error}",
                    hint="shorten the prompt or max_tokens, or raise n_ctx",
                ) from error
            end = time.perf_counter()
            perf = llama_perf_context(llm.ctx)
        choice = result["choices"][0]
        usage = dict(result["usage"])
        output_tokens = int(usage["completion_tokens"])
        first_token = stamps[0] if output_tokens and stamps else None
        last_token = stamps[min(output_tokens, len(stamps)) - 1] if output_tokens and stamps else None
        logprobs = (choice.get("logprobs") or {}).get("token_logprobs") or []
        return self._measured_generation(
            kind,
            choice["text"],
            finish_reason=choice.get("finish_reason"),
            logprobs=[float(value) for value in logprobs if value is not None],
            usage=usage,
            timings=_server_timings(perf),
            stamps=(start, first_token, last_token, end),
        )

    def continuation_tokens(self, context: str, continuation: str) -> list[int] | None:
        """Canonical ids of `continuation` after `context`, as LocalBackend's, but from llama.cpp's own
        tokenizer of the GGUF (no transformers needed): the tail of tokenize(context + continuation)
        when it extends tokenize(context), else tokenize(continuation) alone."""
        head = self._tokenize(context, add_bos=False)
        whole = self._tokenize(context + continuation, add_bos=False)
        if whole[: len(head)] == head and len(whole) > len(head):
            return whole[len(head) :]
        return self._tokenize(continuation, add_bos=False)

    def _score_continuations(self, context: str, continuations: list[str]) -> ContinuationScores:
        """Each option's log-likelihood from a forward pass over context + option: the log-softmax of the
        logits before each option token, summed. The context is evaluated once per question (one batch)
        and each option after it as one batch of its own. llama.cpp's results shift with batch shapes
        (~0.01-0.05 nats a token here), so nothing else is reused: a question's scores do not depend on
        what was evaluated before it, or on the order of its options."""
        self.load()
        llm = self._llm
        started = time.perf_counter()
        scores = ContinuationScores(logliks=[])
        head = self._tokenize(context, add_bos=True) or [llm.token_bos()]
        scores.context_tokens = len(head)
        with self._call_lock:
            for continuation in continuations:
                if not continuation:
                    scores.logliks.append(0.0)
                    continue
                ids = self.continuation_tokens(context, continuation) or []
                tokens = head + ids
                if len(tokens) > llm.n_ctx():
                    raise BackendError(
                        f"local model {self.model_ref!r}: context + option is {len(tokens)} tokens, "
                        f"over n_ctx {llm.n_ctx()}",
                        hint="raise n_ctx in the backend config",
                    )
                evaluating = time.perf_counter()
                if self._scored_context != head:
                    llm.reset()
                    llm.eval(head)
                    self._scored_context = head
                    scores.evaluated_tokens += len(head)
                llm.n_tokens = len(head)  # keep the context's KV cache and logits; eval drops the rest
                llm.eval(ids)
                scores.compute_ms += (time.perf_counter() - evaluating) * 1000
                scores.evaluated_tokens += len(ids)
                scores.continuation_tokens += len(ids)
                logits = np.asarray(llm.scores[len(head) - 1 : len(tokens) - 1], dtype=np.float64)
                steps = log_softmax(logits, axis=1)[np.arange(len(ids)), ids]
                scores.logliks.append(float(steps.sum()))
        scores.latency_ms = (time.perf_counter() - started) * 1000
        scores.peak_rss_mb = round(peak_rss_mb(), 1)
        return scores


def _server_timings(perf: Any) -> dict[str, float]:
    """llama.cpp's perf counters under the names llama.cpp's server (and so xllamacpp) reports them."""
    timings = {
        "prompt_n": float(perf.n_p_eval),
        "prompt_ms": float(perf.t_p_eval_ms),
        "predicted_n": float(perf.n_eval),
        "predicted_ms": float(perf.t_eval_ms),
    }
    if perf.t_p_eval_ms > 0:
        timings["prompt_per_second"] = perf.n_p_eval * 1000 / perf.t_p_eval_ms
    if perf.t_eval_ms > 0:
        timings["predicted_per_second"] = perf.n_eval * 1000 / perf.t_eval_ms
    return timings
