"""Exact-match response cache, TTL- and size-bounded: in-process (one replica) or in Redis (all replicas).

The key is the normalised request (path + the body's JSON with sorted keys, so field order and whitespace
do not matter), which covers the model and every decoding parameter. Only deterministic requests are
cached (temperature 0 or a seed), unless `cache.sampled` says sampled answers may be reused too; errors
are never cached (the gateway only stores 200 answers).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from typing import Any

log = logging.getLogger("rankroute.serve")


def is_cacheable(body: dict[str, Any], *, sampled: bool = False) -> bool:
    """Only answers that the same request would reproduce are worth caching (or any, if `sampled`)."""
    if body.get("stream") or body.get("n", 1) != 1:
        return False
    return sampled or body.get("temperature") == 0 or body.get("seed") is not None


def cache_key(path: str, body: dict[str, Any]) -> str:
    normalised = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(path.encode() + b"\0" + normalised.encode()).hexdigest()


class ResponseCache:
    """LRU of response bytes with a time-to-live, in this process; oldest entries go first when full."""

    def __init__(self, ttl_s: float = 600.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes, dict[str, str]]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def get(self, key: str) -> tuple[bytes, dict[str, str]] | None:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] > self.ttl_s:
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1], entry[2]

    async def put(self, key: str, content: bytes, headers: dict[str, str]) -> None:
        self._entries[key] = (time.monotonic(), content, headers)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def size(self) -> int:
        return len(self._entries)

    async def close(self) -> None:
        """Nothing to release in process."""


# Store the entry with Redis's own expiry, index it by insertion time, then drop lapsed index entries and
# the oldest ones past max_entries: one script, so replicas writing at once keep the bound.
_PUT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('SET', ARGV[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]) / 1000)
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if over > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #oldest, 2 do redis.call('DEL', oldest[i]) end
end
return 1
"""
_INDEX = "rankroute:cache:index"


class RedisResponseCache(ResponseCache):
    """The same cache in Redis, so a request answered by one replica is a hit on every other.

    Eviction past `max_entries` is oldest-inserted first (not least-recently-used). A Redis failure is a
    miss (the request goes upstream), never an error to the client.
    """

    def __init__(self, url: str, ttl_s: float = 600.0, max_entries: int = 10_000) -> None:
        super().__init__(ttl_s, max_entries)
        import redis.asyncio as redis_asyncio

        self._redis: Any = redis_asyncio.from_url(url)
        self._put = self._redis.register_script(_PUT)

    async def get(self, key: str) -> tuple[bytes, dict[str, str]] | None:
        import redis

        try:
            value = await self._redis.get(f"rankroute:cache:{key}")
        except redis.RedisError:
            log.warning("response cache (Redis) unreachable: treating as a miss", exc_info=True)
            value = None
        if value is None:
            self.misses += 1
            return None
        header_line, _, content = bytes(value).partition(b"\n")
        self.hits += 1
        return content, json.loads(header_line)

    async def put(self, key: str, content: bytes, headers: dict[str, str]) -> None:
        import redis

        value = json.dumps(headers).encode() + b"\n" + content
        try:
            await self._put(
                keys=[_INDEX],
                args=[f"rankroute:cache:{key}", value, int(self.ttl_s * 1000), self.max_entries],
            )
        except redis.RedisError:
            log.warning("response cache (Redis) unreachable: answer not cached", exc_info=True)

    async def size(self) -> int:
        return int(await self._redis.zcard(_INDEX))

    async def close(self) -> None:
        await self._redis.aclose()
