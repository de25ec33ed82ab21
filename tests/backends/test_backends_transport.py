"""Both HTTP clients (aiohttp, the default, called directly; and httpx's own transport) behave the same:
answers, streamed timings, and the faults that must be retried."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import pytest
from backend_fault_server import ScriptedServer, Step, chat_body, chat_chunk, usage_chunk
from test_backends_http import GREEDY, MESSAGES, backend_for, chat_and_close, run

from rankroute.backends import BackendConfig, OpenAIBackend, UpstreamHTTPError, make_backend

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]

TRANSPORTS = ["aiohttp", "httpx"]


def test_aiohttp_is_the_default_transport() -> None:
    assert BackendConfig(name="m", base_url="http://127.0.0.1:1/v1").http_transport == "aiohttp"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_streamed_answer_and_timings(transport: str) -> None:
    events: list[Any] = [chat_chunk(t) for t in ["one", " two", " three"]]
    events += [chat_chunk(None, "stop"), usage_chunk(7, 3)]
    with ScriptedServer([Step(delay_s=0.2, sse=events, sse_gap_s=0.05)]) as server:
        generation = run(chat_and_close(backend_for(server, stream=True, http_transport=transport)))
    assert generation.text == "one two three" and generation.output_tokens == 3
    assert generation.ttft_ms is not None and generation.ttft_ms >= 195
    assert generation.itl_ms is not None and generation.itl_ms >= 45  # asyncio timers are 1 ms coarse


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_timeouts_drops_and_5xx_are_retried(transport: str) -> None:
    dropped = Step(sse=[chat_chunk("partial"), chat_chunk(" more"), chat_chunk(None, "stop")], drop_after=1)
    script = [
        Step(delay_s=1.5, body=chat_body("late")),
        Step(status=503, body="busy"),
        Step(body=chat_body("fine")),
    ]
    with ScriptedServer(script) as server:
        generation = run(chat_and_close(backend_for(server, timeout_s=0.3, http_transport=transport)))
    assert generation.text == "fine" and server.attempts == 3
    whole = Step(sse=[chat_chunk("whole"), chat_chunk(None, "stop")])
    with ScriptedServer([dropped, whole]) as server:
        generation = run(chat_and_close(backend_for(server, stream=True, http_transport=transport)))
    assert generation.text == "whole" and server.attempts == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unreachable_server_fails_after_bounded_attempts(transport: str) -> None:
    with ScriptedServer([Step(body=chat_body("never"))]) as server:
        url = server.url  # the port is free again once the server has stopped
    backend = backend_for(server, max_retries=1, http_transport=transport)
    with pytest.raises(UpstreamHTTPError, match="2 attempt"):
        run(chat_and_close(backend))
    assert url == backend.base_url


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_in_flight_requests_never_exceed_the_cap(transport: str) -> None:
    with ScriptedServer([Step(delay_s=0.1, body=chat_body("ok"))]) as server:
        backend = backend_for(server, max_concurrency=3, http_transport=transport)

        async def many() -> list[Any]:
            try:
                return await asyncio.gather(*(backend.chat(MESSAGES, GREEDY) for _ in range(12)))
            finally:
                await backend.aclose()

        answers = run(many())
    assert [a.text for a in answers] == ["ok"] * 12 and server.max_in_flight == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_environment_proxy_is_used_and_no_proxy_bypasses_it(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with ScriptedServer([Step(body=chat_body("via proxy"))]) as proxy:
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        backend = make_backend(
            BackendConfig(
                name="m", base_url="http://model.example:8000/v1", stream=False, http_transport=transport
            )
        )
        assert isinstance(backend, OpenAIBackend)
        generation = run(chat_and_close(backend))
    assert generation.text == "via proxy"
    assert proxy.received[0].path == "http://model.example:8000/v1/chat/completions"
    # the proxy is gone now; a host NO_PROXY names is reached directly
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with ScriptedServer([Step(body=chat_body("direct"))]) as server:
        generation = run(chat_and_close(backend_for(server, http_transport=transport)))
    assert generation.text == "direct" and server.received[0].path == "/v1/chat/completions"


def serve_in_pieces(pieces: list[bytes], pause_s: float) -> tuple[str, threading.Thread]:
    """A one-request HTTP server on 127.0.0.1 that writes its answer in `pieces`, pausing between them."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        with listener, listener.accept()[0] as conn:
            received = b""
            while b"\r\n\r\n" not in received:
                received += conn.recv(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            length = int(
                next(
                    v
                    for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
                    if k.lower() == b"content-length"
                )
            )
            while len(body) < length:
                body += conn.recv(65536)
            for index, piece in enumerate(pieces):
                if index:
                    time.sleep(pause_s)
                conn.sendall(piece)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{port}/v1", thread


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stream_lines_cut_across_reads_are_joined(transport: str) -> None:
    """Events cut mid-line and mid-character (UTF-8 'é'), CRLF line ends: the answer reads whole."""
    events = [chat_chunk("café"), chat_chunk(" crème"), chat_chunk(None, "stop"), usage_chunk(5, 4)]
    sse = (
        "".join(f"data: {json.dumps(e, ensure_ascii=False)}\r\n\r\n" for e in events) + "data: [DONE]\r\n\r\n"
    )
    payload = sse.encode()
    cut_char = payload.index("é".encode()) + 1  # between the two bytes of 'é'
    cut_line = payload.index(" crème".encode()) + 2  # inside the second event's line
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {len(payload)}\r\n"
    head += "Connection: close\r\n\r\n"
    pieces = [head.encode() + payload[:cut_char], payload[cut_char:cut_line], payload[cut_line:]]
    url, thread = serve_in_pieces(pieces, pause_s=0.05)
    backend = make_backend(BackendConfig(name="m", base_url=url, stream=True, http_transport=transport))
    assert isinstance(backend, OpenAIBackend)
    generation = run(chat_and_close(backend))
    thread.join(5)
    assert generation.text == "café crème" and generation.output_tokens == 4
    # a token is timed when its whole line has arrived: the first after one pause, the last after two
    assert generation.ttft_ms is not None and generation.ttft_ms >= 45
    assert generation.latency_ms - generation.ttft_ms >= 45
