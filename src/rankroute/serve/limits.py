"""Per-key budgets (reserve worst case, settle real cost) and per-key request/token rate limits.

`Budgets` keeps the books of one replica in memory: the event loop is single-threaded and reserve() does
not await between its check and its update, so concurrent requests can never jointly reserve past a key's
budget. `RedisBudgets` keeps them in Redis for several replicas: each reserve and settle is one Lua script,
which Redis runs atomically, so replicas hammering one key still never reserve past its budget. The spend
ledger (SQLite/PostgreSQL) stays the durable record: a starting replica raises each key's shared spend to
at least what the ledger holds.

Every hold carries a time-to-live (`hold_ttl_s`): a replica that crashes mid-request cannot keep its holds,
they lapse and the budget comes back. The cost is one documented over-run: a request that outlives its hold
still books its real cost (at most what it held), which may then pass the budget by at most that one request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rankroute.serve.storage import GatewayStore

log = logging.getLogger("rankroute.serve")

DEFAULT_HOLD_TTL_S = 900.0
"""A hold outlives any sane request (timeouts x retries); past this it is treated as a crashed replica's."""


class BudgetExceeded(Exception):
    def __init__(self, key_id: str, budget: float, committed: float, needed: float) -> None:
        self.key_id, self.budget, self.committed, self.needed = key_id, budget, committed, needed
        super().__init__(
            f"key {key_id} budget ${budget:.6f} would be exceeded: ${committed:.6f} spent or reserved, "
            f"this request may cost up to ${needed:.6f} (lower max_tokens or raise the budget)"
        )


class KeyRevoked(Exception):
    """The shared store says the key was revoked (by any replica); raised by reserve."""


class SharedStateUnavailable(Exception):
    """The shared backend (Redis) did not answer: the request is refused rather than run unbudgeted."""


@dataclass(frozen=True)
class Hold:
    """USD held against a key's budget for one request until it is settled, released or lapses."""

    key_id: str
    hold_id: str
    amount: float


class Budgets:
    """Spent and held USD per key, in this process (one replica); revocations live in the key store."""

    shared = False

    def __init__(self, hold_ttl_s: float = DEFAULT_HOLD_TTL_S, clock: Callable[[], float] = time.monotonic):
        self.hold_ttl_s = hold_ttl_s
        self._clock = clock
        self.spent: dict[str, float] = defaultdict(float)
        """Spend per key as this replica last saw it (exact here; a recent mirror in shared backends)."""
        self._holds: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)

    async def load(self, ledger_spent: dict[str, float]) -> None:
        """Start from the ledger's spend (never lowering what is already known)."""
        for key_id, amount in ledger_spent.items():
            self.spent[key_id] = max(self.spent[key_id], amount)

    def _reserved(self, key_id: str) -> float:
        holds = self._holds.get(key_id)
        if not holds:
            return 0.0
        now = self._clock()
        for hold_id in [h for h, (_, expires) in holds.items() if expires <= now]:
            del holds[hold_id]
        return sum(amount for amount, _ in holds.values())

    async def reserve(self, key_id: str, budget: float, amount: float) -> Hold:
        """Hold `amount` against the key's budget, or raise BudgetExceeded (or, for shared budgets,
        KeyRevoked: they check the revocation in the same atomic step)."""
        committed = self.spent[key_id] + self._reserved(key_id)
        if committed + amount > budget + 1e-12:
            raise BudgetExceeded(key_id, budget, committed, amount)
        hold = Hold(key_id, uuid.uuid4().hex, amount)
        self._holds[key_id][hold.hold_id] = (amount, self._clock() + self.hold_ttl_s)
        return hold

    def settle(self, hold: Hold, cost: float) -> None:
        """Drop the hold and book the real cost (0 releases it)."""
        holds = self._holds.get(hold.key_id)
        if holds is not None:
            holds.pop(hold.hold_id, None)
        self.spent[hold.key_id] += cost

    def book(self, key_id: str, cost: float) -> None:
        """Book spend of a key without a budget (nothing was held)."""
        self.spent[key_id] += cost

    async def snapshot(self, key_ids: Iterable[str]) -> dict[str, tuple[float, float]]:
        """(spent, reserved) per key, lapsed holds dropped."""
        return {k: (self.spent.get(k, 0.0), self._reserved(k)) for k in key_ids}

    async def revoke(self, key_id: str) -> None:
        """Revocation is the key store's job in one replica (its in-memory cache is the only copy)."""

    async def is_revoked(self, key_id: str) -> bool:
        return False

    async def drain(self) -> None:
        """Wait for settlements still on their way to a shared backend (none here)."""

    async def close(self) -> None:
        await self.drain()


# One script per operation: Redis runs each atomically (one Redis server; Cluster is not supported, the
# reserve script also reads the revocation set). The clock is Redis's own (TIME), so replicas' clocks
# never disagree about when a hold lapses.
_PURGE_AND_SUM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, id in ipairs(expired) do redis.call('HDEL', KEYS[2], id) end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local reserved = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do reserved = reserved + tonumber(v) end
"""
_RESERVE = (
    "if redis.call('SISMEMBER', KEYS[4], ARGV[5]) == 1 then return {-1, '0', '0'} end\n"
    + _PURGE_AND_SUM
    + """
local amount = tonumber(ARGV[2])
if spent + reserved + amount > tonumber(ARGV[3]) + 1e-12 then
  return {0, tostring(spent), tostring(reserved)}
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
return {1, tostring(spent), tostring(reserved)}
"""
)
_SNAPSHOT = _PURGE_AND_SUM + "return {tostring(spent), tostring(reserved)}"
_SETTLE = """
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if tonumber(ARGV[2]) > 0 then return redis.call('INCRBYFLOAT', KEYS[1], ARGV[2]) end
return redis.call('GET', KEYS[1]) or '0'
"""
_RAISE_TO = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1] end
return tostring(current)
"""
REVOKED_SET = "rankroute:revoked"


def _budget_keys(key_id: str) -> list[str]:
    base = f"rankroute:budget:{{{key_id}}}"
    return [f"{base}:spent", f"{base}:holds", f"{base}:expiry"]


class _SharedBudgets(Budgets):
    """Budgets kept outside the process: settlements go out as background tasks, so the response is
    not held up by them (a hold still pending only makes the next reserve more cautious)."""

    shared = True

    def __init__(self, hold_ttl_s: float) -> None:
        super().__init__(hold_ttl_s)
        self._pending: set[asyncio.Task[None]] = set()

    async def _settle_now(self, key_id: str, hold_id: str, cost: float) -> None:
        raise NotImplementedError

    def settle(self, hold: Hold, cost: float) -> None:
        self._spawn(self._settle_now(hold.key_id, hold.hold_id, cost))

    def book(self, key_id: str, cost: float) -> None:
        if cost > 0:
            self._spawn(self._settle_now(key_id, "", cost))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending))


class RedisBudgets(_SharedBudgets):
    """Budgets and revocations shared by every replica that points at the same Redis."""

    def __init__(self, url: str, hold_ttl_s: float = DEFAULT_HOLD_TTL_S) -> None:
        super().__init__(hold_ttl_s)
        import redis.asyncio as redis_asyncio

        self._redis: Any = redis_asyncio.from_url(url)
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)
        self._snapshot = self._redis.register_script(_SNAPSHOT)
        self._raise_to = self._redis.register_script(_RAISE_TO)

    async def _run(self, what: str, script: Any, keys: list[str], args: list[Any]) -> Any:
        import redis

        try:
            return await script(keys=keys, args=args)
        except redis.RedisError as exc:
            raise SharedStateUnavailable(f"shared budget store (Redis) failed to {what}: {exc}") from exc

    async def load(self, ledger_spent: dict[str, float]) -> None:
        for key_id, amount in ledger_spent.items():
            shared = await self._run("load spend", self._raise_to, _budget_keys(key_id)[:1], [repr(amount)])
            self.spent[key_id] = float(shared)

    async def reserve(self, key_id: str, budget: float, amount: float) -> Hold:
        hold = Hold(key_id, uuid.uuid4().hex, amount)
        ok, spent, reserved = await self._run(
            "reserve",
            self._reserve,
            [*_budget_keys(key_id), REVOKED_SET],
            [hold.hold_id, repr(amount), repr(budget), repr(self.hold_ttl_s), key_id],
        )
        if int(ok) < 0:
            raise KeyRevoked(key_id)
        self.spent[key_id] = float(spent)
        if not int(ok):
            raise BudgetExceeded(key_id, budget, float(spent) + float(reserved), amount)
        return hold

    async def _settle_now(self, key_id: str, hold_id: str, cost: float) -> None:
        try:
            spent = await self._run("settle", self._settle, _budget_keys(key_id), [hold_id, repr(cost)])
            self.spent[key_id] = float(spent)
        except SharedStateUnavailable:
            # the ledger row is written regardless; the hold lapses after hold_ttl_s
            log.exception("settling key %s in Redis failed", key_id)

    async def snapshot(self, key_ids: Iterable[str]) -> dict[str, tuple[float, float]]:
        await self.drain()
        out = {}
        for key_id in key_ids:
            spent, reserved = await self._run("read", self._snapshot, _budget_keys(key_id), [])
            out[key_id] = (float(spent), float(reserved))
            self.spent[key_id] = float(spent)
        return out

    async def revoke(self, key_id: str) -> None:
        import redis

        try:
            await self._redis.sadd(REVOKED_SET, key_id)
        except redis.RedisError as exc:
            raise SharedStateUnavailable(f"shared key store (Redis) failed to revoke: {exc}") from exc

    async def is_revoked(self, key_id: str) -> bool:
        import redis

        try:
            return bool(await self._redis.sismember(REVOKED_SET, key_id))
        except redis.RedisError as exc:
            raise SharedStateUnavailable(f"shared key store (Redis) failed to answer: {exc}") from exc

    async def close(self) -> None:
        await self.drain()
        await self._redis.aclose()


async def postgres_guard(failure: str, coro: Any) -> Any:
    """Await `coro`; a database error becomes SharedStateUnavailable (503, fail closed) named `failure`."""
    try:
        return await coro
    except Exception as exc:  # psycopg.Error, but psycopg is an optional extra
        if type(exc).__module__.split(".")[0] != "psycopg":
            raise
        raise SharedStateUnavailable(f"{failure}: {exc}") from exc


class PostgresBudgets(_SharedBudgets):
    """Budgets shared by replicas through the PostgreSQL ledger database alone (no Redis): the key's row
    is locked for each check-and-hold. Revocations are read from the keys table on every request."""

    def __init__(self, store: GatewayStore, hold_ttl_s: float = DEFAULT_HOLD_TTL_S) -> None:
        super().__init__(hold_ttl_s)
        self._store = store

    async def _guard(self, what: str, coro: Any) -> Any:
        return await postgres_guard(f"shared budget store (PostgreSQL) failed to {what}", coro)

    async def load(self, ledger_spent: dict[str, float]) -> None:
        await self._guard("load spend", self._store.raise_spent(ledger_spent))
        for key_id, (spent, _) in (await self.snapshot(ledger_spent)).items():
            self.spent[key_id] = spent

    async def reserve(self, key_id: str, budget: float, amount: float) -> Hold:
        hold = Hold(key_id, uuid.uuid4().hex, amount)
        ok, spent, reserved = await self._guard(
            "reserve", self._store.reserve_hold(key_id, hold.hold_id, budget, amount, self.hold_ttl_s)
        )
        if ok is None:
            raise KeyRevoked(key_id)
        self.spent[key_id] = spent
        if not ok:
            raise BudgetExceeded(key_id, budget, spent + reserved, amount)
        return hold

    async def _settle_now(self, key_id: str, hold_id: str, cost: float) -> None:
        try:
            self.spent[key_id] = await self._guard("settle", self._store.settle_hold(key_id, hold_id, cost))
        except SharedStateUnavailable:
            log.exception("settling key %s in PostgreSQL failed", key_id)

    async def snapshot(self, key_ids: Iterable[str]) -> dict[str, tuple[float, float]]:
        await self.drain()
        books: dict[str, tuple[float, float]] = await self._guard(
            "read", self._store.budget_books(list(key_ids))
        )
        return books

    async def revoke(self, key_id: str) -> None:
        """The key store's revocation is already in the shared database."""

    async def is_revoked(self, key_id: str) -> bool:
        revoked: bool = await self._guard("answer", self._store.is_revoked(key_id))
        return revoked


class RateLimited(Exception):
    pass


RATE_WINDOW_S = 60.0
"""Keys' rpm/tpm limits count what was admitted in the last minute."""


class RateLimiter:
    """Sliding windows of requests and tokens per key, in memory (one replica).

    A sliding window (not a fixed clock minute) so that no span of `window_s` ever admits more than the
    limit: a fixed window lets a key burst twice its limit across a minute boundary. Each key keeps a
    running token total, so a check costs the same at 10 or 10,000 requests a minute.
    """

    def __init__(self, window_s: float = RATE_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s, self._clock = window_s, clock
        self._events: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._tokens: dict[str, int] = defaultdict(int)

    async def check(self, key_id: str, rpm: int | None, tpm: int | None, tokens: int) -> None:
        """Admit one request of about `tokens` tokens, or raise RateLimited (a refusal is not counted)."""
        if rpm is None and tpm is None:
            return
        now = self._clock()
        events = self._events[key_id]
        while events and now - events[0][0] > self.window_s:
            self._tokens[key_id] -= events.popleft()[1]
        if rpm is not None and len(events) >= rpm:
            raise RateLimited(f"key {key_id} is over its limit of {rpm} requests per minute")
        if tpm is not None and self._tokens[key_id] + tokens > tpm:
            raise RateLimited(f"key {key_id} is over its limit of {tpm} tokens per minute")
        events.append((now, tokens))
        self._tokens[key_id] += tokens

    async def close(self) -> None:
        """Nothing to release in memory; the shared limiters close their connections."""


# Per key: a sorted set of admissions (members "<tokens>:<unique id>", scored by admission time in ms on
# Redis's own clock, as replicas' clocks may disagree) and a running token total beside it. Only the
# admissions leaving the window are read, so a check is O(log n). One script: Redis runs it atomically.
_SLIDING_WINDOW_LUA = """
local admissions, token_total = KEYS[1], KEYS[2]
local rpm, tpm, tokens, window_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local cutoff = '(' .. (now_ms - window_ms)
local leaving = redis.call('ZRANGEBYSCORE', admissions, '-inf', cutoff)
if #leaving > 0 then
  local freed = 0
  for _, member in ipairs(leaving) do
    freed = freed + tonumber(string.match(member, '^(%d+):'))
  end
  redis.call('ZREMRANGEBYSCORE', admissions, '-inf', cutoff)
  redis.call('DECRBY', token_total, freed)
end
local admitted = redis.call('ZCARD', admissions)
if admitted == 0 then
  redis.call('DEL', token_total)
end
if rpm >= 0 and admitted >= rpm then
  return 1
end
if tpm >= 0 and tonumber(redis.call('GET', token_total) or '0') + tokens > tpm then
  return 2
end
redis.call('ZADD', admissions, now_ms, tokens .. ':' .. ARGV[5])
redis.call('INCRBY', token_total, tokens)
redis.call('PEXPIRE', admissions, window_ms + 1000)
redis.call('PEXPIRE', token_total, window_ms + 1000)
return 0
"""


class RedisRateLimiter(RateLimiter):
    """The same sliding windows kept in Redis, so every gateway replica shares one count per key."""

    def __init__(self, url: str, window_s: float = RATE_WINDOW_S) -> None:
        super().__init__(window_s)
        import redis.asyncio as redis_asyncio

        self._redis: Any = redis_asyncio.from_url(url)
        self._admit = self._redis.register_script(_SLIDING_WINDOW_LUA)

    async def check(self, key_id: str, rpm: int | None, tpm: int | None, tokens: int) -> None:
        if rpm is None and tpm is None:
            return
        import redis

        window_ms = round(self.window_s * 1000)
        args = [-1 if rpm is None else rpm, -1 if tpm is None else tpm, max(tokens, 0), window_ms]
        keys = [f"rankroute:rl:{{{key_id}}}:admissions", f"rankroute:rl:{{{key_id}}}:tokens"]  # one slot
        try:
            verdict = await self._admit(keys=keys, args=[*args, uuid.uuid4().hex])
        except redis.RedisError as exc:
            raise SharedStateUnavailable(f"shared rate limits (Redis) failed to answer: {exc}") from exc
        raise_over_limit(verdict, key_id, rpm, tpm)

    async def close(self) -> None:
        await self._redis.aclose()


class PostgresRateLimiter(RateLimiter):
    """The same sliding windows kept in the PostgreSQL ledger database, for replicas sharing it without
    Redis: one transaction per check, with the key's window row locked."""

    def __init__(self, store: GatewayStore, window_s: float = RATE_WINDOW_S) -> None:
        super().__init__(window_s)
        self._store = store

    async def check(self, key_id: str, rpm: int | None, tpm: int | None, tokens: int) -> None:
        if rpm is None and tpm is None:
            return
        verdict = await postgres_guard(
            "shared rate limits (PostgreSQL) failed to answer",
            self._store.admit_request(key_id, rpm, tpm, max(tokens, 0), self.window_s),
        )
        raise_over_limit(verdict, key_id, rpm, tpm)


def raise_over_limit(verdict: int, key_id: str, rpm: int | None, tpm: int | None) -> None:
    """A shared limiter's verdict (0 admitted, 1 over rpm, 2 over tpm) as RateLimited."""
    if verdict == 1:
        raise RateLimited(f"key {key_id} is over its limit of {rpm} requests per minute")
    if verdict == 2:
        raise RateLimited(f"key {key_id} is over its limit of {tpm} tokens per minute")
