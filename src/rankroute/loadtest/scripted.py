"""An OpenAI-compatible streaming server with scripted timing: a fixed delay before the first token and
between tokens, a fixed number of tokens, optional failures. It checks that the load tester measures what
the server did, and measures the load tester's own overhead (a server that costs nothing).

One thread per connection on blocking sockets (no web framework), each token written at an absolute
deadline with `time.sleep` (clock_nanosleep: ~0.1 ms late), with TCP_NODELAY. An asyncio version was
0.6-0.8 ms late per token: epoll's timeout is whole milliseconds, rounded up. The final chunk carries the
server's own `timings` (what it actually did, from the request's arrival) so a test can tell the
server's lateness from the client's measurement error.
`python -m rankroute.loadtest.scripted --port 8123 --ttft-ms 0 --itl-ms 0` runs it in its own process.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Script:
    """Timing and shape of every answer; a token is the word "tok" and usage reports exactly `tokens`."""

    ttft_s: float = 0.05
    itl_s: float = 0.01
    tokens: int = 10
    tokens_per_chunk: int = 1
    prompt_tokens: int = 7
    include_usage: bool = True
    fail_every: int = 0
    fail_status: int = 500
    slots: int = 0  # requests answered at once (0: no limit); the rest wait, as for a server's batch slots


class ScriptedServer:
    """Serve `Script` on 127.0.0.1 from background threads (`with` starts/stops)."""

    def __init__(self, script: Script | None = None, port: int = 0) -> None:
        self.script = script or Script()
        self.port = port
        self.requests = 0
        self._count_lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._slots = threading.Semaphore(self.script.slots) if self.script.slots > 0 else None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ScriptedServer:
        listener = socket.create_server(("127.0.0.1", self.port), backlog=1024)
        self.port = listener.getsockname()[1]
        self._listener = listener
        accept = threading.Thread(target=self._accept, name="scripted-accept", daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop accepting, end open connections (a blocked read returns), wait for the threads."""
        self._closing.set()
        if self._listener is not None:
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        for connection in list(self._connections):
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(5)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closing.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle wait per token
            self._connections.add(connection)
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        """One keep-alive connection: answer requests until the client closes it."""
        reader = connection.makefile("rb")
        try:
            while not self._closing.is_set():
                request_line = reader.readline()
                received = time.perf_counter()  # TTFT counts from the request's arrival
                if not request_line:
                    return
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = json.loads(reader.read(length)) if length else {}
                with self._count_lock:
                    self.requests += 1
                    number = self.requests
                with self._slots if self._slots is not None else nullcontext():
                    # the script runs from the arrival, or from when a slot freed up
                    started = received if self._slots is None else time.perf_counter()
                    self._answer(connection, body, received, started, number)
        except (OSError, ValueError):
            pass
        finally:
            self._connections.discard(connection)
            reader.close()
            connection.close()

    def _answer(
        self, connection: socket.socket, body: dict[str, Any], received: float, started: float, number: int
    ) -> None:
        script = self.script
        if script.fail_every and number % script.fail_every == 0:
            message = json.dumps({"error": {"message": "scripted failure"}}).encode()
            connection.sendall(
                f"HTTP/1.1 {script.fail_status} Error\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(message)}\r\n\r\n".encode()
                + message
            )
            return
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        tokens = min(script.tokens, int(body.get("max_tokens") or script.tokens))
        chat = "messages" in body
        sent = 0
        first = last = received
        while sent < tokens:
            count = min(script.tokens_per_chunk, tokens - sent)
            delay = started + script.ttft_s + (sent + count - 1) * script.itl_s - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            text = "tok" * count
            choice = {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}
            last = time.perf_counter()
            first = last if sent == 0 else first
            connection.sendall(_event({"object": "chunk", "choices": [choice]}))
            sent += count
        final: dict[str, Any] = {
            "object": "chunk",
            "choices": [],
            # what the server did, in milliseconds from the request's arrival
            "timings": {
                "queued_ms": (started - received) * 1000,
                "first_token_ms": (first - received) * 1000,
                "last_token_ms": (last - received) * 1000,
            },
        }
        if script.include_usage:
            final["usage"] = {
                "prompt_tokens": script.prompt_tokens,
                "completion_tokens": tokens,
                "total_tokens": script.prompt_tokens + tokens,
            }
        connection.sendall(_event(final) + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _event(payload: dict[str, Any]) -> bytes:
    return _chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")


@contextmanager
def scripted_server_process(script: Script) -> Iterator[str]:
    """Run the scripted server in its own process (no GIL shared with the client); yields its base URL."""
    command = [
        sys.executable, "-W", "ignore::RuntimeWarning", "-m", "rankroute.loadtest.scripted", "--port", "0",
        "--ttft-ms", str(script.ttft_s * 1000), "--itl-ms", str(script.itl_s * 1000),
        "--tokens", str(script.tokens), "--tokens-per-chunk", str(script.tokens_per_chunk),
        "--fail-every", str(script.fail_every), "--fail-status", str(script.fail_status),
        "--slots", str(script.slots),
    ]  # fmt: skip
    if not script.include_usage:
        command.append("--no-usage")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("serving on "):
            raise RuntimeError(f"scripted server did not start: {line!r}")
        yield line.removeprefix("serving on ").strip()
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--itl-ms", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--tokens-per-chunk", type=int, default=1)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--fail-status", type=int, default=500)
    parser.add_argument("--slots", type=int, default=0, help="requests answered at once (0: no limit)")
    parser.add_argument("--no-usage", action="store_true", help="send no usage chunk")
    args = parser.parse_args()
    script = Script(
        ttft_s=args.ttft_ms / 1000,
        itl_s=args.itl_ms / 1000,
        tokens=args.tokens,
        tokens_per_chunk=args.tokens_per_chunk,
        include_usage=not args.no_usage,
        fail_every=args.fail_every,
        fail_status=args.fail_status,
        slots=args.slots,
    )
    with ScriptedServer(script, port=args.port) as server:
        print(f"serving on {server.base_url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
