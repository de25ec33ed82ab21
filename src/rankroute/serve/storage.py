"""Virtual keys (stored hashed) and the spend ledger, in SQLite (WAL) or PostgreSQL.

Every database call runs on one dedicated thread with one connection, so the event loop never blocks on
disk and writes never interleave. Ledger rows are queued in memory and inserted in batches by a single
writer task: the request path only appends to a list.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rankroute.data.errors import DataError

T = TypeVar("T")

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS gateway_keys (
        key_id TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
        budget_usd DOUBLE PRECISION, rpm INTEGER, tpm INTEGER,
        created_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS gateway_spend (
        request_id TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, key_id TEXT, model TEXT NOT NULL,
        deployment TEXT, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL, latency_ms DOUBLE PRECISION NOT NULL, status INTEGER NOT NULL,
        cached INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS gateway_shadow (
        request_id TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, router TEXT NOT NULL,
        served_model TEXT NOT NULL, shadow_model TEXT NOT NULL)""",
    # shared budgets (PostgreSQL without Redis): spend per key, and the holds of requests in flight
    """CREATE TABLE IF NOT EXISTS gateway_budget_spent (
        key_id TEXT PRIMARY KEY, spent DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS gateway_budget_holds (
        hold_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, amount DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL)""",
    # shared rate limits (PostgreSQL without Redis): each key's admissions in its sliding window, and
    # their running count and token total (the row locked for each check-and-admit)
    """CREATE TABLE IF NOT EXISTS gateway_rate_windows (
        key_id TEXT PRIMARY KEY, requests BIGINT NOT NULL, tokens BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS gateway_rate_admissions (
        key_id TEXT NOT NULL, admitted_at DOUBLE PRECISION NOT NULL, tokens BIGINT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS gateway_rate_admissions_by_key
        ON gateway_rate_admissions (key_id, admitted_at)""",
]

SPEND_COLUMNS = (
    "request_id",
    "ts",
    "key_id",
    "model",
    "deployment",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "status",
    "cached",
)


UNKNOWN_SECRETS_KEPT = 100_000
"""Hashes of presented secrets that matched no key, remembered so each costs one database query."""


def hash_key(secret: str) -> str:
    """SHA-256 of a virtual key: keys are 256-bit random, so a fast hash is enough and lookups stay O(1)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class VirtualKey:
    key_id: str
    name: str
    budget_usd: float | None
    rpm: int | None
    tpm: int | None
    created_at: float
    revoked_at: float | None = None

    def public(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "budget_usd": self.budget_usd,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "created_at": self.created_at,
            "revoked": self.revoked_at is not None,
        }


class _Database:
    """One connection on one thread; `?` placeholders are rewritten for psycopg."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.is_postgres = target.startswith(("postgresql://", "postgres://"))
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rankroute-ledger")
        self._conn: Any = None

    def _connect(self) -> None:
        if self.is_postgres:
            try:
                import psycopg
            except ImportError as exc:  # pragma: no cover - depends on the [postgres] extra
                raise DataError(
                    "a postgresql:// ledger needs psycopg: pip install 'rankroute[postgres]'"
                ) from exc
            try:
                self._conn = psycopg.connect(self.target, autocommit=False)
            except psycopg.Error as exc:
                raise DataError(f"cannot connect to the PostgreSQL ledger: {exc}".strip()) from exc
        else:
            Path(self.target).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.target, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._tx() as cur:
            for ddl in _SCHEMA:
                cur.execute(ddl)

    def _tx(self) -> Any:
        db = self

        class _Tx:
            def __enter__(self) -> Any:
                self.cur = db._conn.cursor()
                if not db.is_postgres:
                    self.cur.execute("BEGIN")
                return self.cur

            def __exit__(self, exc_type: object, *rest: object) -> None:
                if exc_type is None:
                    db._conn.commit() if db.is_postgres else self.cur.execute("COMMIT")
                else:
                    db._conn.rollback() if db.is_postgres else self.cur.execute("ROLLBACK")

        return _Tx()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.is_postgres else sql

    async def call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def open(self) -> None:
        await self.call(self._connect)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        def run() -> None:
            with self._tx() as cur:
                cur.execute(self._sql(sql), tuple(params))

        await self.call(run)

    async def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        def run() -> None:
            with self._tx() as cur:
                cur.executemany(self._sql(sql), rows)

        await self.call(run)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            cur = self._conn.cursor()
            cur.execute(self._sql(sql), tuple(params))
            rows = [tuple(r) for r in cur.fetchall()]
            if self.is_postgres:
                self._conn.commit()
            return rows

        return await self.call(run)

    async def close(self) -> None:
        if self._conn is not None:
            await self.call(self._conn.close)
        self._pool.shutdown(wait=True)


class GatewayStore:
    """Keys, spend ledger and shadow log. Keys are cached in memory (by hash) so auth never touches disk."""

    def __init__(self, target: str, *, flush_every_s: float = 0.2, batch_size: int = 500) -> None:
        self._db = _Database(target)
        self._by_hash: dict[str, VirtualKey] = {}
        self._unknown: OrderedDict[str, None] = OrderedDict()
        self._spend_rows: list[tuple[Any, ...]] = []
        self._shadow_rows: list[tuple[Any, ...]] = []
        self._flush_every_s = flush_every_s
        self._batch_size = batch_size
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False

    @property
    def backend(self) -> str:
        return "postgresql" if self._db.is_postgres else "sqlite"

    async def open(self) -> None:
        await self._db.open()
        await self.refresh_keys()
        self._writer = asyncio.create_task(self._write_loop())

    async def refresh_keys(self) -> None:
        """Reload every key from the database (replicas sharing it create and revoke keys too)."""
        rows = await self._db.fetchall(
            "SELECT key_hash, key_id, name, budget_usd, rpm, tpm, created_at, revoked_at FROM gateway_keys"
        )
        for row in rows:
            known = self._by_hash.get(row[0])
            if known is None or known.revoked_at is None:
                self._by_hash[row[0]] = VirtualKey(*row[1:])

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
        await self._db.close()

    # keys -------------------------------------------------------------------------------------------------
    def lookup(self, secret: str) -> VirtualKey | None:
        """The live (not revoked) key for a presented secret, or None."""
        key = self._by_hash.get(hash_key(secret))
        return key if key is not None and key.revoked_at is None else None

    async def find_key(self, secret: str) -> VirtualKey | None:
        """Look a key up in the database (another replica may have created or revoked it) and cache it.

        Secrets found nowhere are remembered as unknown: a new key's secret is random and never presented
        before it exists, so this never hides a real key, and a client sending a stray token does not
        cost a database query per request."""
        digest = hash_key(secret)
        if digest in self._unknown:
            return None
        rows = await self._db.fetchall(
            "SELECT key_id, name, budget_usd, rpm, tpm, created_at, revoked_at FROM gateway_keys"
            " WHERE key_hash = ?",
            (digest,),
        )
        if not rows:
            self._unknown[digest] = None
            if len(self._unknown) > UNKNOWN_SECRETS_KEPT:
                self._unknown.popitem(last=False)
            return None
        key = VirtualKey(*rows[0])
        self._by_hash[digest] = key
        return key if key.revoked_at is None else None

    def mark_revoked(self, key_id: str) -> None:
        """Refuse a key in this replica's cache (another replica revoked it)."""
        for digest, key in self._by_hash.items():
            if key.key_id == key_id and key.revoked_at is None:
                self._by_hash[digest] = VirtualKey(**{**key.__dict__, "revoked_at": time.time()})

    async def create_key(
        self, name: str, budget_usd: float | None = None, rpm: int | None = None, tpm: int | None = None
    ) -> tuple[str, VirtualKey]:
        """A new key: the secret is returned once and only its hash is stored."""
        secret = "rr-" + secrets.token_urlsafe(32)
        key = VirtualKey("key_" + secrets.token_hex(8), name, budget_usd, rpm, tpm, time.time())
        digest = hash_key(secret)
        await self._db.execute(
            "INSERT INTO gateway_keys (key_id, key_hash, name, budget_usd, rpm, tpm, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key.key_id, digest, name, budget_usd, rpm, tpm, key.created_at),
        )
        self._by_hash[digest] = key
        return secret, key

    def list_keys(self) -> list[VirtualKey]:
        return sorted(self._by_hash.values(), key=lambda k: k.created_at)

    async def revoke_key(self, key_id: str) -> bool:
        """Revoke at once in memory (so the next request is refused), then on disk."""
        if not any(k.key_id == key_id for k in self._by_hash.values()):
            await self.refresh_keys()
        for digest, key in self._by_hash.items():
            if key.key_id == key_id and key.revoked_at is None:
                revoked = VirtualKey(**{**key.__dict__, "revoked_at": time.time()})
                self._by_hash[digest] = revoked
                await self._db.execute(
                    "UPDATE gateway_keys SET revoked_at = ? WHERE key_id = ?", (revoked.revoked_at, key_id)
                )
                return True
        return False

    # ledger -----------------------------------------------------------------------------------------------
    def record_spend(self, row: tuple[Any, ...]) -> None:
        """Queue one ledger row (SPEND_COLUMNS order); the writer task inserts it within flush_every_s."""
        self._spend_rows.append(row)
        if len(self._spend_rows) >= self._batch_size:
            self._wake.set()

    def record_shadow(self, request_id: str, router: str, served_model: str, shadow_model: str) -> None:
        self._shadow_rows.append((request_id, time.time(), router, served_model, shadow_model))

    async def flush(self) -> None:
        spend, self._spend_rows = self._spend_rows, []
        shadow, self._shadow_rows = self._shadow_rows, []
        if spend:
            marks = ", ".join("?" * len(SPEND_COLUMNS))
            await self._db.executemany(
                f"INSERT INTO gateway_spend ({', '.join(SPEND_COLUMNS)}) VALUES ({marks})", spend
            )
        if shadow:
            await self._db.executemany(
                "INSERT INTO gateway_shadow (request_id, ts, router, served_model, shadow_model)"
                " VALUES (?, ?, ?, ?, ?)",
                shadow,
            )

    async def _write_loop(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._flush_every_s)
            self._wake.clear()
            await self.flush()
        await self.flush()

    # shared budgets and rate limits in PostgreSQL ----------------------------------------------------------
    # The key's row in gateway_budget_spent (gateway_rate_windows) is locked (SELECT ... FOR UPDATE) for
    # the check-and-hold (check-and-admit), so replicas acting on one key at once are serialised by the
    # database. The database's clock dates holds and admissions, so replicas' clocks never disagree.
    _NOW = "extract(epoch from clock_timestamp())"

    async def reserve_hold(
        self, key_id: str, hold_id: str, budget: float, amount: float, ttl_s: float
    ) -> tuple[bool | None, float, float]:
        """Hold `amount` unless spent + held + amount passes the budget: (held?, spent, held before);
        held is None when the key was revoked (checked in the same transaction)."""
        db = self._db

        def run() -> tuple[bool | None, float, float]:
            with db._tx() as cur:
                cur.execute("SELECT revoked_at FROM gateway_keys WHERE key_id = %s", (key_id,))
                revoked = cur.fetchone()
                if revoked is not None and revoked[0] is not None:
                    return None, 0.0, 0.0
                cur.execute(
                    "INSERT INTO gateway_budget_spent (key_id, spent) VALUES (%s, 0) ON CONFLICT DO NOTHING",
                    (key_id,),
                )
                cur.execute("SELECT spent FROM gateway_budget_spent WHERE key_id = %s FOR UPDATE", (key_id,))
                spent = float(cur.fetchone()[0])
                cur.execute(
                    f"DELETE FROM gateway_budget_holds WHERE key_id = %s AND expires_at <= {self._NOW}",
                    (key_id,),
                )
                cur.execute(
                    "SELECT COALESCE(SUM(amount), 0) FROM gateway_budget_holds WHERE key_id = %s", (key_id,)
                )
                held = float(cur.fetchone()[0])
                if spent + held + amount > budget + 1e-12:
                    return False, spent, held
                cur.execute(
                    "INSERT INTO gateway_budget_holds (hold_id, key_id, amount, expires_at)"
                    f" VALUES (%s, %s, %s, {self._NOW} + %s)",
                    (hold_id, key_id, amount, ttl_s),
                )
                return True, spent, held

        return await db.call(run)

    async def settle_hold(self, key_id: str, hold_id: str, cost: float) -> float:
        """Drop a hold (if it has not lapsed) and add the real cost to the key's spend; the new spend."""
        db = self._db

        def run() -> float:
            with db._tx() as cur:
                cur.execute("DELETE FROM gateway_budget_holds WHERE hold_id = %s", (hold_id,))
                cur.execute(
                    "INSERT INTO gateway_budget_spent (key_id, spent) VALUES (%s, %s) ON CONFLICT (key_id)"
                    " DO UPDATE SET spent = gateway_budget_spent.spent + EXCLUDED.spent RETURNING spent",
                    (key_id, cost),
                )
                return float(cur.fetchone()[0])

        return await db.call(run)

    async def admit_request(
        self, key_id: str, rpm: int | None, tpm: int | None, tokens: int, window_s: float
    ) -> int:
        """Admit one request into the key's sliding window: 0 admitted, 1 over rpm, 2 over tpm (a refusal
        is not counted). Only the admissions leaving the window are read, on the database's clock."""
        db = self._db

        def run() -> int:
            with db._tx() as cur:
                cur.execute(
                    "INSERT INTO gateway_rate_windows (key_id, requests, tokens) VALUES (%s, 0, 0)"
                    " ON CONFLICT DO NOTHING",
                    (key_id,),
                )
                cur.execute(
                    "SELECT requests, tokens FROM gateway_rate_windows WHERE key_id = %s FOR UPDATE",
                    (key_id,),
                )
                requests, used = (int(v) for v in cur.fetchone())
                cur.execute(f"SELECT {self._NOW}::double precision")
                now = float(cur.fetchone()[0])  # a constant, so the index bounds the scan below
                cur.execute(
                    "DELETE FROM gateway_rate_admissions"
                    " WHERE key_id = %s AND admitted_at < %s RETURNING tokens",
                    (key_id, now - window_s),
                )
                leaving = [int(row[0]) for row in cur.fetchall()]
                requests, used = requests - len(leaving), used - sum(leaving)
                verdict = 0
                if rpm is not None and requests >= rpm:
                    verdict = 1
                elif tpm is not None and used + tokens > tpm:
                    verdict = 2
                else:
                    cur.execute(
                        "INSERT INTO gateway_rate_admissions (key_id, admitted_at, tokens)"
                        " VALUES (%s, %s, %s)",
                        (key_id, now, tokens),
                    )
                    requests, used = requests + 1, used + tokens
                cur.execute(
                    "UPDATE gateway_rate_windows SET requests = %s, tokens = %s WHERE key_id = %s",
                    (requests, used, key_id),
                )
                return verdict

        return await db.call(run)

    async def raise_spent(self, ledger_spent: dict[str, float]) -> None:
        """Raise each key's shared spend to at least the ledger's (never lower it)."""
        await self._db.executemany(
            "INSERT INTO gateway_budget_spent (key_id, spent) VALUES (?, ?) ON CONFLICT (key_id)"
            " DO UPDATE SET spent = GREATEST(gateway_budget_spent.spent, EXCLUDED.spent)",
            list(ledger_spent.items()),
        )

    async def budget_books(self, key_ids: list[str]) -> dict[str, tuple[float, float]]:
        """(spent, held) per key, lapsed holds not counted."""
        spent = await self._db.fetchall(
            "SELECT key_id, spent FROM gateway_budget_spent WHERE key_id = ANY(?)", (key_ids,)
        )
        held = await self._db.fetchall(
            "SELECT key_id, SUM(amount) FROM gateway_budget_holds"
            f" WHERE key_id = ANY(?) AND expires_at > {self._NOW} GROUP BY key_id",
            (key_ids,),
        )
        spent_by, held_by = dict(spent), dict(held)
        return {k: (float(spent_by.get(k) or 0.0), float(held_by.get(k) or 0.0)) for k in key_ids}

    async def is_revoked(self, key_id: str) -> bool:
        rows = await self._db.fetchall("SELECT revoked_at FROM gateway_keys WHERE key_id = ?", (key_id,))
        return bool(rows) and rows[0][0] is not None

    async def spend_by_key(self) -> dict[str, float]:
        rows = await self._db.fetchall(
            "SELECT key_id, SUM(cost_usd) FROM gateway_spend WHERE key_id IS NOT NULL GROUP BY key_id"
        )
        return {r[0]: float(r[1] or 0.0) for r in rows}

    async def spend_rows(self, limit: int = 1000) -> list[dict[str, Any]]:
        await self.flush()
        rows = await self._db.fetchall(
            f"SELECT {', '.join(SPEND_COLUMNS)} FROM gateway_spend ORDER BY ts DESC LIMIT ?", (limit,)
        )
        return [dict(zip(SPEND_COLUMNS, r, strict=True)) for r in rows]

    async def shadow_rows(self) -> list[dict[str, Any]]:
        await self.flush()
        rows = await self._db.fetchall(
            "SELECT request_id, router, served_model, shadow_model FROM gateway_shadow ORDER BY ts"
        )
        return [
            dict(zip(("request_id", "router", "served_model", "shadow_model"), r, strict=True)) for r in rows
        ]
