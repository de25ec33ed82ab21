"""Client for any OpenAI-compatible server (hosted APIs, vLLM, Ollama, llama.cpp, TGI, our gateway).

Streams by default so time to first token and inter-token latency are measured on the wire; retries
429/5xx/timeouts/dropped streams with full-jitter backoff and Retry-After; caps in-flight requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import aiohttp
import httpx
import yarl

from rankroute.backends.base import Backend, DecodingParams, Generation, stream_timings
from rankroute.backends.config import BackendConfig
from rankroute.backends.errors import BackendUnsupported, MalformedResponse, MissingAPIKey, UpstreamHTTPError
from rankroute.backends.retry import RetryPolicy, parse_retry_after
from rankroute.backends.tokens import count_message_tokens, count_tokens, tokenizer_name

logger = logging.getLogger(__name__)
T = TypeVar("T")


class _Retryable(Exception):
    """One attempt failed in a way worth trying again."""

    def __init__(
        self, reason: str, status: int | None = None, body: str = "", retry_after_s: float | None = None
    ):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.body = body
        self.retry_after_s = retry_after_s


@dataclass
class _Answer:
    """What one successful attempt returned, before token counting and costing."""

    text: str
    finish_reason: str | None
    usage: dict[str, Any] | None
    logprobs: list[float] | None
    start: float
    end: float
    first_token: float | None = None
    last_token: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def _logprob_values(logprobs: Any) -> list[float]:
    """Token log-probs from either the chat shape ({content: [{logprob}]}) or legacy (token_logprobs)."""
    if not isinstance(logprobs, dict):
        return []
    if isinstance(logprobs.get("content"), list):
        return [
            float(item["logprob"])
            for item in logprobs["content"]
            if isinstance(item, dict) and "logprob" in item
        ]
    if isinstance(logprobs.get("token_logprobs"), list):
        return [float(value) for value in logprobs["token_logprobs"] if value is not None]
    return []


def _choice_text(choice: dict[str, Any], chat: bool, streamed: bool) -> str | None:
    if chat:
        holder = choice.get("delta" if streamed else "message")
        if not isinstance(holder, dict):
            return None
        content = holder.get("content")
        return "" if content is None and streamed else content
    text = choice.get("text")
    return text if isinstance(text, str) else None


def _env_proxy(url: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, NO_PROXY, ...) names for `url`, looked up once per client.

    Neither client re-reads the environment per request: aiohttp's trust_env re-reads the proxy
    variables and ~/.netrc on a thread for every request (a third of the client's CPU at 1,000 req/s).
    """
    parts = urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme) or None


def _json_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


# what a dead, reset or stalled connection raises on either transport: worth another attempt
_TIMEOUTS: tuple[type[BaseException], ...] = (httpx.TimeoutException, TimeoutError)
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (httpx.TransportError, aiohttp.ClientError)


class _Stream(Protocol):
    """An answer whose status and headers are read; its body is still to be read or streamed."""

    status: int
    retry_after: str | None

    async def read(self) -> bytes: ...

    def lines(self) -> AsyncGenerator[str, None]: ...


class _Connection(Protocol):
    """One event loop's HTTP client: POST JSON, read the answer whole or as a stream of lines."""

    async def post(self, url: str, body: dict[str, Any]) -> tuple[int, str | None, bytes]:
        """Status, Retry-After header and the whole body."""
        ...

    def stream(self, url: str, body: dict[str, Any]) -> AbstractAsyncContextManager[_Stream]: ...

    async def aclose(self) -> None: ...


class _AiohttpStream:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.status = response.status
        self.retry_after = response.headers.get("retry-after")

    async def read(self) -> bytes:
        return await self.response.read()

    async def lines(self) -> AsyncGenerator[str, None]:
        """The body's lines, split from whatever bytes have arrived (one wait per read, not per line)."""
        pending = b""
        async for data in self.response.content.iter_any():
            *complete, pending = (pending + data).split(b"\n")
            for line in complete:
                yield line.decode().rstrip("\r")
        if pending:
            yield pending.decode().rstrip("\r")


class _AiohttpConnection:
    """aiohttp called directly (the default): one ClientSession per backend and event loop.

    httpcore's pool scans every connection (a socket poll each) whenever a request is queued or
    finishes, so its cost per request grows with the number of connections: on the 2-core reference
    machine against an instant server, 255 req/s at 1 connection but 43 at 64, while aiohttp's connector
    (with its C HTTP parser) held ~700 req/s at every concurrency. Building an httpx Request and Response
    around each aiohttp call (httpx-aiohttp) still cost a fifth of the request loop, so this is aiohttp
    alone: no cookie jar, no redirects, no environment lookups per request.
    """

    def __init__(self, config: BackendConfig, headers: dict[str, str], base_url: str) -> None:
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=config.timeout_s,  # waiting for a pooled connection, as httpx's pool timeout
            sock_connect=config.connect_timeout_s,
            sock_read=config.timeout_s,
        )
        connector = aiohttp.TCPConnector(limit=config.max_concurrency, ssl=httpx.create_ssl_context())
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers=headers,
            cookie_jar=aiohttp.DummyCookieJar(),
            read_bufsize=2**20,  # a stream line (one SSE event, log-probs included) may be long
        )
        self.proxy = _env_proxy(base_url)
        self._urls: dict[str, yarl.URL] = {}

    def _url(self, url: str) -> yarl.URL:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = yarl.URL(url)
        return parsed

    def _request(self, url: str, body: dict[str, Any]) -> Any:
        return self.session.post(
            self._url(url), data=_json_bytes(body), proxy=self.proxy, allow_redirects=False
        )

    async def post(self, url: str, body: dict[str, Any]) -> tuple[int, str | None, bytes]:
        async with self._request(url, body) as response:
            return response.status, response.headers.get("retry-after"), await response.read()

    @contextlib.asynccontextmanager
    async def stream(self, url: str, body: dict[str, Any]) -> AsyncIterator[_Stream]:
        async with self._request(url, body) as response:
            yield _AiohttpStream(response)

    async def aclose(self) -> None:
        await self.session.close()


class _HttpxStream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status = response.status_code
        self.retry_after = response.headers.get("retry-after")

    async def read(self) -> bytes:
        return await self.response.aread()

    def lines(self) -> AsyncGenerator[str, None]:
        return cast(
            AsyncGenerator[str, None], self.response.aiter_lines()
        )  # an async generator, typed loosely


class _HttpxConnection:
    """httpx's own transport (`http_transport: httpx`), used without an httpx.AsyncClient.

    The client's layers (cookie jar, auth flow, redirects, URL merging) cost more CPU per request than
    a whole round trip, and an OpenAI-compatible API needs none of them.
    """

    def __init__(self, config: BackendConfig, headers: dict[str, str], base_url: str, timeout: httpx.Timeout):
        proxy = _env_proxy(base_url)
        self.transport = httpx.AsyncHTTPTransport(
            verify=httpx.create_ssl_context(),
            limits=httpx.Limits(max_connections=config.max_concurrency, max_keepalive_connections=None),
            proxy=httpx.Proxy(proxy) if proxy else None,
        )
        self.headers = headers
        self.extensions = {"timeout": timeout.as_dict()}

    async def _open(self, url: str, body: dict[str, Any]) -> httpx.Response:
        request = httpx.Request(
            "POST", url, content=_json_bytes(body), headers=self.headers, extensions=self.extensions
        )
        return await self.transport.handle_async_request(request)

    async def post(self, url: str, body: dict[str, Any]) -> tuple[int, str | None, bytes]:
        response = await self._open(url, body)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        return response.status_code, response.headers.get("retry-after"), content

    @contextlib.asynccontextmanager
    async def stream(self, url: str, body: dict[str, Any]) -> AsyncIterator[_Stream]:
        response = await self._open(url, body)
        try:
            yield _HttpxStream(response)
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()


class OpenAIBackend(Backend):
    """Async OpenAI-compatible client with explicit timeouts, bounded retries and a concurrency cap."""

    def __init__(self, config: BackendConfig, *, retry: RetryPolicy | None = None) -> None:
        super().__init__(config.name)
        if not config.base_url:
            raise ValueError("OpenAIBackend needs config.base_url")
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self.retry = retry or RetryPolicy(
            max_retries=config.max_retries,
            base_backoff_s=config.backoff_base_s,
            max_backoff_s=config.backoff_max_s,
        )
        self.timeout = httpx.Timeout(
            connect=config.connect_timeout_s,
            read=config.timeout_s,
            write=config.timeout_s,
            pool=config.timeout_s,
        )
        self._per_loop: dict[int, tuple[asyncio.AbstractEventLoop, _Connection, asyncio.Semaphore]] = {}
        self._ask_stream_usage = True
        self._max_completion_tokens = False
        self._headers()  # fail at construction, not mid-run, when the API key is missing

    # connection state is per event loop: a transport's sockets belong to the loop that opened them
    def _client(self) -> tuple[_Connection, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        entry = self._per_loop.get(id(loop))
        if entry is not None and entry[0] is loop:
            return entry[1], entry[2]
        for key, (other, _, _) in list(self._per_loop.items()):
            if other.is_closed() or key == id(loop):  # a closed loop's, or an old loop's reused id
                del self._per_loop[key]
        # made here, inside the running loop, so the first request's timings hold no set-up
        headers = self._headers()
        client: _Connection
        if self.config.http_transport == "httpx":
            client = _HttpxConnection(self.config, headers, self.base_url, self.timeout)
        else:
            client = _AiohttpConnection(self.config, headers, self.base_url)
        semaphore = asyncio.Semaphore(self.config.max_concurrency)
        self._per_loop[id(loop)] = (loop, client, semaphore)
        return client, semaphore

    def _headers(self) -> dict[str, str]:
        headers = {"user-agent": "rankroute", "accept": "application/json"}
        headers["content-type"] = "application/json"
        if self.config.api_key_env:
            key = os.environ.get(self.config.api_key_env, "")
            if not key.strip():
                raise MissingAPIKey(self.config.api_key_env, self.name)
            headers["Authorization"] = f"Bearer {key.strip()}"
        return headers

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        entry = self._per_loop.pop(id(loop), None)
        if entry is not None:
            await entry[1].aclose()

    def _body(self, params: DecodingParams) -> dict[str, Any]:
        return {"model": self.config.model_id, **params.request_fields()}

    async def chat(self, messages: list[dict[str, str]], params: DecodingParams) -> Generation:
        body = self._body(params) | {"messages": messages}
        if params.logprobs:
            body["logprobs"] = True
            if params.top_logprobs is not None:
                body["top_logprobs"] = params.top_logprobs
        answer = await self._generate("/chat/completions", body, chat=True)
        return self._generation(answer, lambda: count_message_tokens(messages, self.config.model_id))

    async def complete(self, prompt: str, params: DecodingParams) -> Generation:
        body = self._body(params) | {"prompt": prompt}
        if params.logprobs:
            body["logprobs"] = params.top_logprobs or 1
        answer = await self._generate("/completions", body, chat=False)
        return self._generation(answer, lambda: count_tokens(prompt, self.config.model_id))

    async def loglikelihood(self, context: str, continuations: list[str]) -> list[float]:
        """Scores via legacy completions with `echo` (vLLM, OpenAI's older models): prompt token log-probs."""
        return list(await asyncio.gather(*(self._echo_score(context, cont) for cont in continuations)))

    async def _echo_score(self, context: str, continuation: str) -> float:
        body = {
            "model": self.config.model_id,
            "prompt": context + continuation,
            "max_tokens": 1,
            "temperature": 0.0,
            "echo": True,
            "logprobs": 0,
        }
        url = self.base_url + "/completions"
        raw = await self._with_retries(url, lambda client: self._post_json(client, url, body))
        try:
            logprobs = raw["choices"][0]["logprobs"]
            offsets, values = logprobs["text_offset"], logprobs["token_logprobs"]
        except (KeyError, IndexError, TypeError) as error:
            raise BackendUnsupported(
                f"backend {self.name!r}: the server returned no prompt log-probs for echo=True",
                hint="vLLM and OpenAI's legacy completions support it; llama.cpp and Ollama do not",
            ) from error
        end = len(context) + len(continuation)
        picked = [
            v for o, v in zip(offsets, values, strict=False) if len(context) <= o < end and v is not None
        ]
        if not picked:
            raise BackendUnsupported(f"backend {self.name!r}: no log-probs covered the continuation")
        return float(sum(picked))

    async def _generate(self, path: str, body: dict[str, Any], *, chat: bool) -> _Answer:
        url = self.base_url + path
        sent = self._adapted(body, chat)
        try:
            if self.config.stream:
                return await self._with_retries(
                    url, lambda client: self._stream_once(client, url, sent, chat)
                )

            async def once(client: _Connection) -> _Answer:
                start = time.perf_counter()
                raw = await self._post_json(client, url, sent)
                return self._parse_full(raw, chat, start, time.perf_counter())

            return await self._with_retries(url, once)
        except UpstreamHTTPError as error:
            if not self._learn_from_rejection(error, chat):
                raise
            return await self._generate(path, body, chat=chat)

    def _adapted(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        """The request as this server accepts it (learned from earlier 400s)."""
        sent = dict(body)
        if chat and self._max_completion_tokens and "max_tokens" in sent:
            sent["max_completion_tokens"] = sent.pop("max_tokens")
        if self.config.stream:
            sent["stream"] = True
            if self._ask_stream_usage:
                sent["stream_options"] = {"include_usage": True}
        return sent

    def _learn_from_rejection(self, error: UpstreamHTTPError, chat: bool) -> bool:
        """Adapt once to a 400 naming a parameter this server wants differently; True means ask again.

        Older servers (some vLLM/TGI versions) reject stream_options: then tokens are counted with a
        tokenizer. Newer OpenAI models reject max_tokens in favour of max_completion_tokens.
        """
        if error.status != 400:
            return False
        if self.config.stream and self._ask_stream_usage and "stream_options" in error.body:
            self._ask_stream_usage = False
            return True
        if chat and not self._max_completion_tokens and "max_completion_tokens" in error.body:
            self._max_completion_tokens = True
            return True
        return False

    async def _with_retries(self, url: str, attempt_once: Callable[[_Connection], Awaitable[T]]) -> T:
        client, semaphore = self._client()
        last: _Retryable | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                async with semaphore:
                    return await attempt_once(client)
            except _Retryable as failure:
                last = failure
            except _TIMEOUTS as error:
                last = _Retryable(f"timed out ({type(error).__name__})")
            except _CONNECTION_ERRORS as error:  # refused, reset, peer closed mid-body
                last = _Retryable(f"connection failed ({type(error).__name__})")
            if attempt < self.retry.max_attempts:
                delay = self.retry.delay_s(attempt, last.retry_after_s)
                logger.warning(
                    "backend %s: attempt %d/%d failed (%s); retrying in %.2fs",
                    self.name,
                    attempt,
                    self.retry.max_attempts,
                    last.reason,
                    delay,
                )
                await asyncio.sleep(delay)
        assert last is not None
        raise UpstreamHTTPError(
            self.name, url, last.status, last.body or last.reason, self.retry.max_attempts
        )

    def _check_status(self, status: int, retry_after: str | None, url: str, content: bytes) -> None:
        """Raise for an error status: _Retryable where another attempt may succeed, else the error."""
        if status < 400:
            return
        body_text = content.decode(errors="replace")
        if self.retry.should_retry_status(status):
            raise _Retryable(f"HTTP {status}", status, body_text, parse_retry_after(retry_after))
        raise UpstreamHTTPError(self.name, url, status, body_text, attempts=1)

    async def _post_json(self, client: _Connection, url: str, body: dict[str, Any]) -> dict[str, Any]:
        status, retry_after, content = await client.post(url, body)
        if status >= 400:
            self._check_status(status, retry_after, url, content)
        try:
            parsed = json.loads(content)
        except ValueError as error:
            shown = content[:120].decode(errors="replace")
            raise MalformedResponse(
                f"backend {self.name!r}: {url} did not answer JSON: {shown!r}",
                hint="is base_url an OpenAI-compatible API root (usually ending in /v1)?",
            ) from error
        if not isinstance(parsed, dict):
            raise MalformedResponse(
                f"backend {self.name!r}: {url} answered {type(parsed).__name__}, not an object"
            )
        return parsed

    def _malformed(self, what: str, payload: Any) -> MalformedResponse:
        return MalformedResponse(
            f"backend {self.name!r}: response is not OpenAI-shaped ({what}): {json.dumps(payload)[:160]}",
            hint="point base_url at an OpenAI-compatible endpoint",
        )

    def _parse_full(self, raw: dict[str, Any], chat: bool, start: float, end: float) -> _Answer:
        if "error" in raw and "choices" not in raw:
            raise UpstreamHTTPError(self.name, self.base_url, None, json.dumps(raw["error"]), attempts=1)
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._malformed("no choices", raw)
        text = _choice_text(choices[0], chat, streamed=False)
        if text is None:
            raise self._malformed("no message content" if chat else "no text", raw)
        usage = raw.get("usage") if isinstance(raw.get("usage"), dict) else None
        values = _logprob_values(choices[0].get("logprobs"))
        return _Answer(text, choices[0].get("finish_reason"), usage, values or None, start, end, raw=raw)

    async def _stream_once(self, client: _Connection, url: str, body: dict[str, Any], chat: bool) -> _Answer:
        start = time.perf_counter()
        parts: list[str] = []
        logprobs: list[float] = []
        usage: dict[str, Any] | None = None
        finish_reason: str | None = None
        first_token = last_token = None
        done = False
        last_chunk: dict[str, Any] = {}
        async with client.stream(url, body) as response, contextlib.aclosing(response.lines()) as lines:
            if response.status >= 400:
                self._check_status(response.status, response.retry_after, url, await response.read())
            # closed here when [DONE] ends the loop, not by the garbage collector (a task and a wake-up each)
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    done = True
                    break
                try:
                    chunk = json.loads(payload)
                except ValueError as error:
                    raise self._malformed("stream chunk is not JSON", payload) from error
                if not isinstance(chunk, dict):
                    raise self._malformed("stream chunk is not an object", chunk)
                if "error" in chunk:
                    raise _Retryable("error event mid-stream", None, json.dumps(chunk["error"])[:200])
                last_chunk = chunk
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                choices = chunk.get("choices")
                if not isinstance(choices, list):
                    raise self._malformed("stream chunk without choices", chunk)
                if not choices:
                    continue
                text = _choice_text(choices[0], chat, streamed=True)
                if text is None:
                    raise self._malformed("stream chunk without content", chunk)
                if text:
                    now = time.perf_counter()
                    first_token = first_token or now
                    last_token = now
                    parts.append(text)
                logprobs += _logprob_values(choices[0].get("logprobs"))
                finish_reason = choices[0].get("finish_reason") or finish_reason
        if not done and finish_reason is None:
            raise _Retryable("stream ended before [DONE] (truncated)")
        text = "".join(parts)
        raw = {
            "id": last_chunk.get("id"),
            "model": last_chunk.get("model"),
            "object": "chat.completion" if chat else "text_completion",
            "choices": [
                {"index": 0, "finish_reason": finish_reason}
                | ({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
            ],
            "usage": usage,
        }
        end = time.perf_counter()
        return _Answer(text, finish_reason, usage, logprobs or None, start, end, first_token, last_token, raw)

    def _generation(self, answer: _Answer, count_input: Callable[[], int]) -> Generation:
        usage = answer.usage or {}
        extra: dict[str, Any] = {}
        if isinstance(usage.get("prompt_tokens"), int) and isinstance(usage.get("completion_tokens"), int):
            input_tokens, output_tokens, counted_by = (
                usage["prompt_tokens"],
                usage["completion_tokens"],
                "usage",
            )
        else:
            input_tokens = count_input()
            output_tokens = count_tokens(answer.text, self.config.model_id)
            counted_by = "tokenizer"
            extra["tokenizer"] = tokenizer_name(self.config.model_id)
        timings = stream_timings(
            answer.start, answer.first_token, answer.last_token, answer.end, output_tokens
        )
        latency_ms = timings["latency_ms"] or 0.0
        return Generation(
            text=answer.text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            tokens_counted_by=counted_by,
            latency_ms=latency_ms,
            ttft_ms=timings["ttft_ms"],
            itl_ms=timings["itl_ms"],
            tokens_per_s=timings["tokens_per_s"],
            cost_usd=self.config.call_cost_usd(input_tokens, output_tokens, latency_ms),
            finish_reason=answer.finish_reason,
            logprobs=answer.logprobs,
            model=self.name,
            raw=answer.raw,
            extra=extra,
        )
