"""One streamed request, timed: time to first token, mean inter-token latency, end-to-end latency and
token counts from the server's `usage` (asked for with `stream_options.include_usage`) or a real tokenizer.

Stream chunks are never counted as tokens: servers pack several tokens into one chunk under load.

TTFT and latency run from the moment the request goes to the network (httpcore's first trace event: TCP
connect on a new connection, else sending the request head), so they hold the network and the server but
not the load tester's own ~0.5 ms of request building; that time, and any wait for a free connection, is
kept apart as `before_send_ms`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from rankroute.backends.base import stream_timings
from rankroute.backends.tokens import count_tokens

ERROR_KINDS = ("timeout", "connect", "http_429", "http_4xx", "http_5xx", "stream", "empty", "overload")


@dataclass
class RequestResult:
    """What one request did; times are seconds since the run started (perf_counter based)."""

    index: int
    start_s: float
    end_s: float
    warmup: bool = False
    ok: bool = False
    error_kind: str | None = None
    error: str | None = None
    status: int | None = None
    ttft_ms: float | None = None
    itl_ms: float | None = None
    latency_ms: float = 0.0
    before_send_ms: float | None = None
    schedule_lag_ms: float | None = None  # open loop: how late the request started after its arrival time
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens_counted_by: str | None = None
    tokens_per_s: float | None = None
    chunks: int = 0
    server_timings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def request_body(
    config_model: str, prompt: str, *, endpoint: str, max_tokens: int, temperature: float, ignore_eos: bool
) -> dict[str, Any]:
    """The OpenAI-shaped body of one streamed request, asking for `usage` in the last chunk."""
    body: dict[str, Any] = {
        "model": config_model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    if endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if ignore_eos:  # vLLM and llama.cpp extension: decode exactly max_tokens
        body["ignore_eos"] = True
    return body


def _chunk_text(chunk: dict[str, Any]) -> str:
    text = ""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            text += (delta.get("content") or "") + (delta.get("reasoning_content") or "")
        elif isinstance(choice.get("text"), str):
            text += choice["text"]
    return text


async def timed_request(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    *,
    index: int,
    origin: float,
    headers: dict[str, str] | None = None,
) -> RequestResult:
    """Send one streamed request and time it; never raises for a failed request (it is a result too)."""
    start = time.perf_counter()
    sent: list[float] = []

    async def on_network(event: str, info: dict[str, Any]) -> None:
        if not sent and event.endswith(".started"):
            sent.append(time.perf_counter())

    first: float | None = None
    last: float | None = None
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] = {}
    text_parts: list[str] = []
    chunks = 0
    result = RequestResult(index=index, start_s=start - origin, end_s=start - origin)
    try:
        async with client.stream(
            "POST", url, json=body, headers=headers, extensions={"trace": on_network}
        ) as response:
            result.status = response.status_code
            if response.status_code >= 400:
                detail = (await response.aread()).decode(errors="replace")[:300]
                kind = "http_429" if response.status_code == 429 else f"http_{response.status_code // 100}xx"
                return _failed(result, origin, kind, f"HTTP {response.status_code}: {detail}")
            buffer = b""
            async for data in response.aiter_raw():  # read to the end: a drained connection is reused
                arrived = time.perf_counter()  # a token's time is when its bytes came, not when parsed
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        continue
                    try:
                        chunk = json.loads(payload)
                    except json.JSONDecodeError:
                        return _failed(result, origin, "stream", f"malformed stream chunk: {payload[:120]!r}")
                    if "error" in chunk:
                        return _failed(
                            result, origin, "stream", f"error in stream: {str(chunk['error'])[:200]}"
                        )
                    text = _chunk_text(chunk)
                    if text:
                        first = first if first is not None else arrived
                        last = arrived
                        chunks += 1
                        text_parts.append(text)
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    if isinstance(chunk.get("timings"), dict):
                        timings = chunk["timings"]
    except httpx.TimeoutException as exc:
        return _failed(result, origin, "timeout", f"{type(exc).__name__}: {exc}")
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        kind = "connect" if isinstance(exc, httpx.ConnectError) else "stream"
        return _failed(result, origin, kind, f"{type(exc).__name__}: {exc}")
    end = time.perf_counter()
    result.end_s = end - origin
    result.chunks = chunks
    result.server_timings = timings
    if sent:
        result.before_send_ms = (sent[0] - start) * 1000.0
        start = sent[0]
    if first is None:
        result.latency_ms = (end - start) * 1000.0
        result.error_kind, result.error = "empty", "the stream carried no tokens"
        return result
    if usage and isinstance(usage.get("completion_tokens"), int):
        result.output_tokens = int(usage["completion_tokens"])
        result.input_tokens = int(usage.get("prompt_tokens") or 0)
        result.tokens_counted_by = "usage"
    else:
        model = str(body.get("model", ""))
        result.output_tokens = count_tokens("".join(text_parts), model)
        prompt = body.get("prompt") or " ".join(m["content"] for m in body.get("messages", []))
        result.input_tokens = count_tokens(str(prompt), model)
        result.tokens_counted_by = "tokenizer"
    measured = stream_timings(start, first, last, end, result.output_tokens)
    result.latency_ms = float(measured["latency_ms"] or 0.0)
    result.ttft_ms = measured["ttft_ms"]
    result.itl_ms = measured["itl_ms"]
    result.tokens_per_s = measured["tokens_per_s"]
    result.ok = True
    return result


def _failed(result: RequestResult, origin: float, kind: str, message: str) -> RequestResult:
    end = time.perf_counter()
    result.end_s = end - origin
    result.latency_ms = (result.end_s - result.start_s) * 1000.0
    result.error_kind, result.error = kind, message
    return result
