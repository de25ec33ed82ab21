"""A real PostgreSQL server for tests: started in a temp dir on a loopback port, stopped afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _as_postgres_user(args: list[str]) -> list[str]:
    """initdb refuses to run as root: run the server as `nobody` then."""
    return ["runuser", "-u", "nobody", "--", *args] if os.geteuid() == 0 else args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_binary(name: str) -> str | None:
    """On PATH, else where Debian's postgresql package puts it (/usr/lib/postgresql/<version>/bin)."""
    found = shutil.which(name)
    if found is None:
        candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
        found = str(candidates[-1]) if candidates else None
    return found


@contextmanager
def running_postgres() -> Iterator[str]:
    """The URL of the server's `postgres` database; skips the test when no server can be started."""
    initdb, pg_ctl = _server_binary("initdb"), _server_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install -y postgresql)")
    pytest.importorskip("psycopg", reason="needs the [postgres] extra: pip install 'rankroute[postgres]'")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as a non-root user")
    # pytest's tmp dirs are private to root; the server's user needs a directory it can reach
    base = Path(tempfile.mkdtemp(prefix="rankroute-pg-"))
    os.chmod(base, 0o777)
    data = base / "data"
    user = "nobody" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    init = subprocess.run(
        _as_postgres_user([initdb, "-D", str(data), "--auth=trust", "-U", user]),
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        pytest.skip(f"initdb failed here: {init.stderr.strip()[:200]}")
    port = _free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
    started = subprocess.run(
        _as_postgres_user([pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"]),
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        pytest.skip(f"pg_ctl start failed: {(base / 'log').read_text()[-300:]}")
    try:
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "fast", "stop"]
        subprocess.run(_as_postgres_user(stop), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
