"""The request path: authenticate, guard, resolve the model, reserve budget, call upstreams with retries,
fallbacks and circuit breakers, then settle spend and book the ledger.

Bodies are forwarded as the client's bytes whenever nothing in them must change, and upstream answers
(JSON or SSE) are relayed as bytes; only the small facts the gateway needs (usage, id) are parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from rankroute.route.base import Router
from rankroute.serve.balancer import CircuitBreaker, DeploymentState, order_deployments
from rankroute.serve.cache import RedisResponseCache, ResponseCache, cache_key, is_cacheable
from rankroute.serve.config import GatewayConfig, RouterModelConfig
from rankroute.serve.errors import GatewayError, bad_request
from rankroute.serve.guardrails import (
    GuardrailViolation,
    Hook,
    input_text,
    max_input_chars,
    redact_pii,
    redact_pii_output,
)
from rankroute.serve.limits import (
    BudgetExceeded,
    Budgets,
    Hold,
    KeyRevoked,
    PostgresBudgets,
    PostgresRateLimiter,
    RateLimited,
    RateLimiter,
    RedisBudgets,
    RedisRateLimiter,
    SharedStateUnavailable,
)
from rankroute.serve.local import LocalModels
from rankroute.serve.storage import GatewayStore, VirtualKey
from rankroute.serve.upstream import UpstreamError, UpstreamPool, UpstreamResponse

log = logging.getLogger("rankroute.serve")

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
DEFAULT_MAX_TOKENS = 1024
"""Injected when a budgeted key sends no max_tokens, so the worst-case cost is bounded."""


class UpstreamFailure(Exception):
    """A retryable failure of one deployment (connect error, timeout, 429/5xx)."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Decision:
    """What resolving a model name produced: groups to try in order, and how it was decided."""

    groups: list[str]
    router: str | None = None
    router_ms: float = 0.0
    arm: str | None = None


@dataclass
class Call:
    """Per-request bookkeeping shared by the non-streaming and streaming paths."""

    request_id: str
    path: str
    model: str
    key: VirtualKey | None
    hold: Hold | None
    started: float
    prompt: str
    input_estimate: int


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rankroute_requests", "Requests served", ["model", "deployment", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "rankroute_request_seconds", "End-to-end latency", ["model"], registry=self.registry
        )
        self.overhead = Histogram(
            "rankroute_overhead_seconds",
            "Time the gateway itself adds",
            registry=self.registry,
            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1.0),
        )
        self.upstream_errors = Counter(
            "rankroute_upstream_errors", "Failed upstream attempts", ["deployment"], registry=self.registry
        )
        self.breaker_open = Gauge(
            "rankroute_breaker_open",
            "1 while a deployment's breaker is open",
            ["deployment"],
            registry=self.registry,
        )
        self.spend = Counter("rankroute_spend_usd", "USD booked", ["model"], registry=self.registry)
        self.cache_hits = Counter(
            "rankroute_cache_hits", "Responses served from cache", registry=self.registry
        )


def shared_state_error(exc: SharedStateUnavailable) -> GatewayError:
    """Redis down: refuse (503) rather than serve a key whose budget or revocation cannot be checked."""
    return GatewayError(503, str(exc), type="server_error", code="shared_state_unavailable")


def _invalid_key() -> GatewayError:
    return GatewayError(
        401, "invalid or revoked API key", type="authentication_error", code="invalid_api_key"
    )


def prompt_id_for(text: str) -> str:
    return "gw-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def load_router_file(path: str) -> Router:
    """Load a router trained by `rankroute route train` (rankroute.route.persist)."""
    from rankroute.route import persist  # type: ignore[attr-defined,unused-ignore]

    router: Router = persist.load_router(path)
    return router


def rank_models(router: Router, text: str, willingness_to_pay: float) -> list[str]:
    """The router's models, best first for this prompt (quality - cost / willingness to pay)."""
    try:
        score = router.predict_quality([text])[0] - router.predict_cost([text])[0] / willingness_to_pay
        return [router.models_[int(i)] for i in np.argsort(-score, kind="stable")]
    except NotImplementedError:
        first = str(router.route([text], willingness_to_pay)[0])
        return [first, *(m for m in router.models_ if m != first)]


class Gateway:
    """All live state of one gateway process: deployments, routers, keys, budgets, ledger, cache."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        routers: dict[str, Router] | None = None,
        hooks_before: list[Hook] | None = None,
        hooks_after: list[Hook] | None = None,
        admin_key: str | None = None,
        seed: int | None = None,
    ) -> None:
        import os

        self.config = config
        self.rng = random.Random(seed)
        self.admin_key = admin_key if admin_key is not None else os.environ.get(config.keys.admin_key_env)
        retry = config.retries
        self.states: dict[str, list[DeploymentState]] = {}
        for dep in config.deployments:
            breaker = CircuitBreaker(retry.breaker_failures, retry.breaker_cooldown_s)
            self.states.setdefault(dep.group_name, []).append(DeploymentState(dep, breaker))
        self.pools = {
            d.name: UpstreamPool(d.base_url, timeout_s=d.timeout_s, connect_timeout_s=min(5.0, d.timeout_s))
            for d in config.deployments
            if d.base_url is not None
        }
        self._upstream_headers: dict[str, dict[str, str]] = {}
        for d in config.deployments:
            headers = {"content-type": "application/json"}
            key = d.api_key()
            if key:
                headers["authorization"] = f"Bearer {key}"
            self._upstream_headers[d.name] = headers
        self.router_configs: dict[str, RouterModelConfig] = {r.name: r for r in config.routers}
        self.routers: dict[str, Router] = dict(routers or {})
        self.shadow_routers: dict[str, Router] = {}
        self.ab_tests = {t.name: t for t in config.ab_tests}
        self.hooks_before: list[Hook] = list(hooks_before or [])
        self.hooks_after: list[Hook] = list(hooks_after or [])
        if config.guardrails.max_input_chars is not None:
            self.hooks_before.insert(0, max_input_chars(config.guardrails.max_input_chars))
        if config.guardrails.redact_pii:
            self.hooks_before.append(redact_pii)
            self.hooks_after.append(redact_pii_output)
        self._hooks_rewrite = bool(hooks_before) or config.guardrails.redact_pii
        redis_url, cache = config.storage.redis_url, config.cache
        self.cache: ResponseCache | None = None
        if cache.enabled:
            self.cache = (
                RedisResponseCache(redis_url, cache.ttl_s, cache.max_entries)
                if redis_url
                else ResponseCache(cache.ttl_s, cache.max_entries)
            )
        self.store = GatewayStore(config.storage.ledger)
        hold_ttl_s = config.storage.hold_ttl_s
        self.budgets: Budgets = (
            RedisBudgets(redis_url, hold_ttl_s)
            if redis_url
            else PostgresBudgets(self.store, hold_ttl_s)
            if self.store.backend == "postgresql"
            else Budgets(hold_ttl_s)
        )
        self.limiter: RateLimiter = (
            RedisRateLimiter(redis_url)
            if redis_url
            else PostgresRateLimiter(self.store)
            if self.store.backend == "postgresql"
            else RateLimiter()
        )
        self.local = LocalModels([d for d in config.deployments if d.local is not None])
        self.metrics = Metrics()
        self.recent: OrderedDict[str, tuple[str, str, str | None]] = OrderedDict()
        self.started = False
        self._background: set[asyncio.Task[Any]] = set()

    # lifecycle --------------------------------------------------------------------------------------------
    async def start(self) -> None:
        for name, cfg in self.router_configs.items():
            if name not in self.routers:
                if cfg.path is None:
                    raise GatewayError(500, f"router {name!r} has no path and no fitted router was given")
                self.routers[name] = await asyncio.to_thread(load_router_file, cfg.path)
            if cfg.shadow is not None:
                self.shadow_routers[name] = await asyncio.to_thread(load_router_file, cfg.shadow)
            unknown = [m for m in self.routers[name].models_ if cfg.models.get(m, m) not in self.states]
            if unknown:
                log.warning("router %s knows models with no deployment: %s (they are skipped)", name, unknown)
        await self.store.open()
        await self.budgets.load(await self.store.spend_by_key())
        await self.local.start()
        self.started = True

    async def close(self) -> None:
        for task in list(self._background):
            await task
        for pool in self.pools.values():
            await pool.aclose()
        await self.budgets.close()
        if self.cache is not None:
            await self.cache.close()
        await self.store.close()
        await self.local.close()
        await self.limiter.close()

    @property
    def public_models(self) -> list[str]:
        return sorted(self.states) + sorted(self.routers) + sorted(self.ab_tests)

    def ready(self) -> dict[str, Any]:
        deployments = {
            s.config.name: {"group": g, "breaker": s.breaker.state, "in_flight": s.in_flight}
            for g, states in self.states.items()
            for s in states
        }
        healthy = [g for g, states in self.states.items() if any(s.breaker.available() for s in states)]
        return {"ready": bool(healthy) and self.started, "deployments": deployments}

    # auth -------------------------------------------------------------------------------------------------
    async def authenticate(self, request: Request, *, defer_budgeted: bool = False) -> VirtualKey | None:
        """The caller's live key. A key unknown here is looked up in the shared database (another replica
        may have created it); with shared budgets every request also checks the shared revocations, so a
        key revoked on any replica is refused by all of them from the next request on.

        `defer_budgeted` leaves that check, for a key with a budget, to the budget reservation, which
        makes it in the same round trip (the request path then checks before a cache hit itself)."""
        header = request.headers.get("authorization", "")
        secret = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not secret:
            if self.config.keys.required:
                raise GatewayError(
                    401, "missing API key: send 'Authorization: Bearer <key>'", type="authentication_error"
                )
            return None
        key = self.store.lookup(secret)
        if key is None:
            key = await self.store.find_key(secret)
        if key is not None and self.budgets.shared and not (defer_budgeted and key.budget_usd is not None):
            key = await self._unless_revoked(key)
        if key is None and self.config.keys.required:
            raise _invalid_key()
        return key

    async def _unless_revoked(self, key: VirtualKey) -> VirtualKey | None:
        """The key, or None once the shared store says it was revoked (then refused here too)."""
        try:
            revoked = await self.budgets.is_revoked(key.key_id)
        except SharedStateUnavailable as exc:
            raise shared_state_error(exc) from exc
        if revoked:
            self._revoked(key)
            return None
        return key

    def _revoked(self, key: VirtualKey) -> None:
        """Forget a key another replica revoked: refused when keys are required, anonymous otherwise."""
        self.store.mark_revoked(key.key_id)
        if self.config.keys.required:
            raise _invalid_key()

    def check_admin(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        secret = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not self.admin_key:
            raise GatewayError(
                403,
                f"admin endpoints are disabled: set {self.config.keys.admin_key_env} to enable them",
                type="permission_error",
            )
        import hmac

        if not hmac.compare_digest(secret.encode(), self.admin_key.encode()):
            raise GatewayError(401, "admin endpoints need the admin key", type="authentication_error")

    # model resolution -------------------------------------------------------------------------------------
    def _with_fallbacks(self, groups: list[str]) -> list[str]:
        out: list[str] = []
        for g in groups:
            for name in [g, *self.config.fallbacks.get(g, [])]:
                if name not in out:
                    out.append(name)
        return out

    async def resolve(self, model: str, text: str, sticky: str, request_id: str) -> Decision:
        arm = None
        if model in self.ab_tests:
            test = self.ab_tests[model]
            digest = hashlib.sha256(f"{test.name}\0{sticky}".encode()).digest()
            point = int.from_bytes(digest[:8], "big") / 2**64 * sum(test.arms.values())
            for candidate, share in test.arms.items():
                arm = candidate
                point -= share
                if point < 0:
                    break
            assert arm is not None
            model = arm
        if model in self.states:
            return Decision(self._with_fallbacks([model]), arm=arm)
        if model in self.routers:
            cfg = self.router_configs.get(model) or RouterModelConfig(name=model)
            t0 = time.perf_counter()
            ranked = await asyncio.to_thread(rank_models, self.routers[model], text, cfg.willingness_to_pay)
            router_ms = (time.perf_counter() - t0) * 1000
            groups = [cfg.models.get(m, m) for m in ranked]
            groups = [g for g in groups if g in self.states]
            if model in self.shadow_routers and groups:
                self._spawn(self._shadow(model, cfg, text, groups[0], request_id))
            return Decision(self._with_fallbacks(groups), router=model, router_ms=router_ms, arm=arm)
        raise GatewayError(
            404,
            f"model {model!r} does not exist on this gateway; GET /v1/models lists {self.public_models}",
            code="model_not_found",
            param="model",
        )

    async def _shadow(
        self, name: str, cfg: RouterModelConfig, text: str, served: str, request_id: str
    ) -> None:
        try:
            ranked = await asyncio.to_thread(
                rank_models, self.shadow_routers[name], text, cfg.willingness_to_pay
            )
            self.store.record_shadow(request_id, name, served, cfg.models.get(ranked[0], ranked[0]))
        except Exception:  # a broken candidate must never disturb serving
            log.exception("shadow router for %s failed", name)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # the request path -------------------------------------------------------------------------------------
    async def revoke_key(self, key_id: str) -> bool:
        """Revoke in the key store and, with Redis, in the set every replica checks."""
        revoked = await self.store.revoke_key(key_id)
        if revoked:
            await self.budgets.revoke(key_id)
        return revoked

    async def handle(self, request: Request, path: str) -> Response:
        started = time.perf_counter()
        request_id = "rr-" + uuid.uuid4().hex
        key = await self.authenticate(request, defer_budgeted=True)
        revocation_unchecked = key is not None and key.budget_usd is not None and self.budgets.shared
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise bad_request("'model' is required and must be a string", param="model")
        if path == "chat/completions":
            messages = body.get("messages")
            if (
                not isinstance(messages, list)
                or not messages
                or not all(isinstance(m, dict) for m in messages)
            ):
                raise bad_request("'messages' must be a non-empty list of message objects", param="messages")
        elif not isinstance(body.get("prompt"), str | list):
            raise bad_request("'prompt' is required (a string or a list of strings)", param="prompt")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise bad_request("'stream' must be true or false", param="stream")
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise bad_request("'max_tokens' must be a positive integer", param="max_tokens")

        changed = False
        if self.hooks_before:
            try:
                for hook in self.hooks_before:
                    body = hook(body)
            except GuardrailViolation as exc:
                raise GatewayError(400, str(exc), code="guardrail_violation") from exc
            changed = self._hooks_rewrite
        text = input_text(body)
        input_estimate = len(raw)  # bytes bound tokens from above for any BPE tokenizer

        if key is not None:
            try:
                await self.limiter.check(key.key_id, key.rpm, key.tpm, len(text) // 4 + (max_tokens or 0))
            except RateLimited as exc:
                raise GatewayError(
                    429, str(exc), type="rate_limit_error", code="rate_limit_exceeded"
                ) from exc
            except SharedStateUnavailable as exc:
                raise shared_state_error(exc) from exc

        sticky = str(
            body.get("user") or (key.key_id if key else "") or (request.client.host if request.client else "")
        )
        decision = await self.resolve(model, text, sticky, request_id)
        if not decision.groups:
            raise GatewayError(
                503, f"model {model!r} has no deployment the gateway can call", type="server_error"
            )

        ckey = None
        if self.cache is not None and is_cacheable(body, sampled=self.config.cache.sampled):
            ckey = cache_key(path, body)
            hit = await self.cache.get(ckey)
            if hit is not None and revocation_unchecked and key is not None:
                key = await self._unless_revoked(key)
            if hit is not None:
                self.metrics.cache_hits.inc()
                content, headers = hit
                self._book(
                    request_id,
                    key,
                    model,
                    headers.get("x-rankroute-deployment"),
                    0,
                    0,
                    0.0,
                    started,
                    200,
                    True,
                )
                return Response(
                    content, media_type="application/json", headers={**headers, "x-rankroute-cache": "hit"}
                )

        hold = None
        if key is not None and key.budget_usd is not None:
            if max_tokens is None:
                max_tokens = DEFAULT_MAX_TOKENS
                body["max_tokens"] = max_tokens
                changed = True
            worst = max(
                s.config.cost(input_estimate, max_tokens) for g in decision.groups for s in self.states[g]
            )
            try:
                hold = await self.budgets.reserve(key.key_id, key.budget_usd, worst)
            except KeyRevoked:
                self._revoked(key)
                key = None  # keys optional: served as anonymous, like any revoked key
            except BudgetExceeded as exc:
                raise GatewayError(429, str(exc), type="insufficient_quota", code="budget_exceeded") from exc
            except SharedStateUnavailable as exc:
                raise shared_state_error(exc) from exc

        call = Call(request_id, path, model, key, hold, started, text, input_estimate)
        payload: bytes | None = None if changed else raw
        try:
            return await self._try_groups(call, decision, body, payload, stream, ckey)
        except BaseException:
            self._release(call)
            raise

    def _release(self, call: Call) -> None:
        """Give a request's hold back unspent (no answer was produced); a no-op once settled."""
        if call.hold is not None:
            self.budgets.settle(call.hold, 0.0)
            call.hold = None

    async def _try_groups(
        self,
        call: Call,
        decision: Decision,
        body: dict[str, Any],
        payload: bytes | None,
        stream: bool,
        ckey: str | None,
    ) -> Response:
        last_error = "no deployment was available"
        last_status = 503
        retry = self.config.retries
        for group in decision.groups:
            for state in order_deployments(
                self.states[group], self._strategy(group), call.input_estimate, self.rng
            ):
                dep = state.config
                for attempt in range(retry.attempts + 1):
                    if not state.breaker.allow():
                        break
                    if dep.local is None and dep.upstream_model != body["model"]:
                        send = json.dumps({**body, "model": dep.upstream_model}).encode()
                    else:
                        send = payload if payload is not None else json.dumps(body).encode()
                    state.in_flight += 1
                    state.count_request(call.input_estimate // 4)
                    try:
                        if dep.local is not None:
                            try:
                                result = await self.local.call(dep, call.path, body, stream)
                            except UpstreamError as exc:
                                raise UpstreamFailure(str(exc), 502) from exc
                        elif stream:
                            return await self._stream(call, decision, group, state, send)
                        else:
                            result = await self._post(dep.name, call.path, send)
                    except UpstreamFailure as exc:
                        state.in_flight -= 1
                        state.breaker.record_failure()
                        self.metrics.upstream_errors.labels(dep.name).inc()
                        self.metrics.breaker_open.labels(dep.name).set(state.breaker.state != "closed")
                        last_error, last_status = f"{dep.name}: {exc}", exc.status
                        log.warning("request %s: deployment %s failed: %s", call.request_id, dep.name, exc)
                        if attempt < retry.attempts:
                            await asyncio.sleep(retry.backoff_s * 2**attempt * (0.5 + self.rng.random()))
                        continue
                    state.in_flight -= 1
                    if dep.local is not None and stream:
                        state.breaker.record_success()
                        return self._local_stream(call, decision, group, state, result)
                    return self._finish(call, decision, group, state, result, ckey)
        self._release(call)
        status = (
            504
            if last_status == 504
            else 503
            if last_status == 503 and "no deployment" in last_error
            else 502
        )
        self._book(call.request_id, call.key, call.model, None, 0, 0, 0.0, call.started, status, False)
        raise GatewayError(
            status,
            f"every deployment for {call.model!r} failed or is cooling down; last error: {last_error}",
            type="server_error",
            code="upstream_unavailable",
        )

    def _strategy(self, group: str) -> Any:
        cfg = self.config.groups.get(group)
        return cfg.strategy if cfg is not None else "weighted"

    async def _post(self, deployment: str, path: str, payload: bytes) -> tuple[int, bytes, float]:
        t0 = time.perf_counter()
        try:
            resp = await self.pools[deployment].post(path, payload, self._upstream_headers[deployment])
            content = await resp.read()
        except UpstreamError as exc:
            raise UpstreamFailure(str(exc), 504 if exc.timeout else 502) from exc
        elapsed = time.perf_counter() - t0
        if resp.status in RETRYABLE_STATUS:
            raise UpstreamFailure(f"HTTP {resp.status}: {content[:200].decode(errors='replace')}", 502)
        return resp.status, content, elapsed

    def _finish(
        self,
        call: Call,
        decision: Decision,
        group: str,
        state: DeploymentState,
        result: tuple[int, bytes, float],
        ckey: str | None,
    ) -> Response:
        status, content, upstream_s = result
        dep = state.config
        if status >= 400:  # the upstream refused the request itself (4xx): pass it through, not a failure
            state.breaker.record_success()
            self._settle(call, dep.name, 0, 0, 0.0, status)
            return Response(
                content,
                status_code=status,
                media_type="application/json",
                headers=self._headers(call, decision, group, dep.name, upstream_s),
            )
        state.breaker.record_success()
        in_tokens = out_tokens = 0
        try:
            parsed = json.loads(content)
            usage = parsed.get("usage") or {}
            in_tokens = int(usage.get("prompt_tokens") or 0)
            out_tokens = int(usage.get("completion_tokens") or 0)
            response_id = parsed.get("id")
            answer = None
            choices = parsed.get("choices") or []
            if choices:
                answer = (choices[0].get("message") or {}).get("content") or choices[0].get("text")
            if isinstance(response_id, str):
                self._remember(response_id, call.prompt, group, answer)
            if self.hooks_after:
                for hook in self.hooks_after:
                    parsed = hook(parsed)
                content = json.dumps(parsed).encode()
        except (ValueError, AttributeError, TypeError):
            log.warning(
                "request %s: upstream %s answered a body that is not OpenAI JSON", call.request_id, dep.name
            )
        if in_tokens and upstream_s:
            state.observe_ttft(upstream_s * 1000, in_tokens)
        cost = self._settle(call, dep.name, in_tokens, out_tokens, dep.cost(in_tokens, out_tokens), 200)
        headers = self._headers(call, decision, group, dep.name, upstream_s)
        headers["x-rankroute-cost-usd"] = f"{cost:.8f}"
        if ckey is not None and self.cache is not None:
            self._spawn(self.cache.put(ckey, content, headers))
        return Response(content, media_type="application/json", headers=headers)

    def _headers(
        self, call: Call, decision: Decision, group: str, deployment: str, upstream_s: float
    ) -> dict[str, str]:
        overhead_ms = (time.perf_counter() - call.started - upstream_s) * 1000
        self.metrics.overhead.observe(overhead_ms / 1000)
        headers = {
            "x-request-id": call.request_id,
            "x-rankroute-model": group,
            "x-rankroute-deployment": deployment,
            "x-rankroute-router-ms": f"{decision.router_ms:.3f}",
            "x-rankroute-overhead-ms": f"{overhead_ms:.3f}",
        }
        if decision.router:
            headers["x-rankroute-router"] = decision.router
        if decision.arm:
            headers["x-rankroute-ab-arm"] = decision.arm
        return headers

    def _settle(
        self, call: Call, deployment: str | None, in_tokens: int, out_tokens: int, cost: float, status: int
    ) -> float:
        """Book the real cost (never more than what was held for a budgeted key) and write the ledger row."""
        if call.hold is not None:
            cost = min(cost, call.hold.amount)
            self.budgets.settle(call.hold, cost)
            call.hold = None
        elif call.key is not None:
            self.budgets.book(call.key.key_id, cost)
        self._book(
            call.request_id,
            call.key,
            call.model,
            deployment,
            in_tokens,
            out_tokens,
            cost,
            call.started,
            status,
            False,
        )
        return cost

    def _book(
        self,
        request_id: str,
        key: VirtualKey | None,
        model: str,
        deployment: str | None,
        in_tokens: int,
        out_tokens: int,
        cost: float,
        started: float,
        status: int,
        cached: bool,
    ) -> None:
        latency = time.perf_counter() - started
        self.store.record_spend(
            (
                request_id,
                time.time(),
                key.key_id if key else None,
                model,
                deployment,
                in_tokens,
                out_tokens,
                cost,
                latency * 1000,
                status,
                int(cached),
            )
        )
        self.metrics.requests.labels(model, deployment or "", str(status)).inc()
        self.metrics.latency.labels(model).observe(latency)
        if cost:
            self.metrics.spend.labels(model).inc(cost)

    def _remember(self, response_id: str, prompt: str, group: str, answer: str | None) -> None:
        self.recent[response_id] = (prompt, group, answer)
        if len(self.recent) > 20_000:
            self.recent.popitem(last=False)

    # streaming --------------------------------------------------------------------------------------------
    async def _stream(
        self, call: Call, decision: Decision, group: str, state: DeploymentState, payload: bytes
    ) -> Response:
        """Open the upstream stream and wait for its first chunk: until then a failure can still fail over."""
        dep = state.config
        t0 = time.perf_counter()
        try:
            resp = await self.pools[dep.name].post(call.path, payload, self._upstream_headers[dep.name])
            if resp.status != 200:
                content = await resp.read()
        except UpstreamError as exc:
            raise UpstreamFailure(str(exc), 504 if exc.timeout else 502) from exc
        if resp.status != 200:
            if resp.status in RETRYABLE_STATUS:
                raise UpstreamFailure(f"HTTP {resp.status}: {content[:200]!r}", 502)
            state.in_flight -= 1
            state.breaker.record_success()
            elapsed = time.perf_counter() - t0
            return self._finish(call, decision, group, state, (resp.status, content, elapsed), None)
        chunks = resp.iter_body()
        try:
            first = await chunks.__anext__()
        except (UpstreamError, StopAsyncIteration) as exc:
            resp.close()
            raise UpstreamFailure(
                f"stream broke before its first byte: {exc or type(exc).__name__}", 502
            ) from exc
        ttft = time.perf_counter() - t0
        state.observe_ttft(ttft * 1000, max(call.input_estimate // 4, 1))
        headers = self._headers(call, decision, group, dep.name, ttft)
        self._remember_stream(first, call.prompt, group)
        relay = _Relay(self, call, state, resp, chunks)
        return _ClosingStream(relay.body(first), relay.close, media_type="text/event-stream", headers=headers)

    def _remember_stream(self, first: bytes, prompt: str, group: str) -> None:
        start = first.find(b'"id":"')
        if start >= 0:
            end = first.find(b'"', start + 6)
            if end > start:
                self._remember(first[start + 6 : end].decode(errors="replace"), prompt, group, None)

    def _local_stream(
        self,
        call: Call,
        decision: Decision,
        group: str,
        state: DeploymentState,
        result: tuple[int, bytes, float],
    ) -> Response:
        """A local model answers whole; relay it as OpenAI SSE chunks so streaming clients work the same."""
        status, content, elapsed = result
        parsed = json.loads(content)
        usage = parsed.get("usage") or {}
        self._remember(parsed["id"], call.prompt, group, None)
        cost = self._settle(
            call,
            state.config.name,
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
            0.0,
            status,
        )
        del cost
        headers = self._headers(call, decision, group, state.config.name, elapsed)
        return StreamingResponse(
            _sse_from_completion(parsed, call.path), media_type="text/event-stream", headers=headers
        )


CLIENT_CLOSED = 499
"""Ledger status of a stream the client dropped before its end (nginx's convention)."""


class _Relay:
    """One upstream stream relayed to one client; `close` runs exactly once however the stream ends.

    The end may be normal, an upstream failure mid-way, or the client going away before the first byte
    was sent (the body generator then never starts, so its own `finally` would never run) or mid-stream
    (the generator is left suspended at a `yield`). `_ClosingStream` calls `close` in every case, so the
    deployment's in-flight count drops, the upstream connection is dropped and the budget hold is settled
    with what was produced, at once rather than at garbage collection or never.
    """

    def __init__(
        self,
        gateway: Gateway,
        call: Call,
        state: DeploymentState,
        resp: UpstreamResponse,
        chunks: AsyncGenerator[bytes, None],
    ) -> None:
        self.gateway, self.call, self.state, self.resp, self.chunks = gateway, call, state, resp, chunks
        self.usage_tail = b""
        self.deltas = 0
        self.status = CLIENT_CLOSED
        self.closed = False

    async def body(self, first: bytes) -> AsyncIterator[bytes]:
        """Relay SSE bytes; after the first byte a failure ends the stream with an error event."""
        dep = self.state.config
        try:
            chunk = first
            while True:
                self.deltas += chunk.count(b'"delta"') + chunk.count(b'"text"')
                if b'"usage"' in chunk or self.usage_tail:
                    self.usage_tail = (self.usage_tail + chunk)[-4096:]
                yield chunk
                try:
                    chunk = await self.chunks.__anext__()
                except StopAsyncIteration:
                    break
            self.status = 200
            self.state.breaker.record_success()
        except UpstreamError as exc:
            self.status = 502
            self.state.breaker.record_failure()
            self.gateway.metrics.upstream_errors.labels(dep.name).inc()
            log.warning(
                "request %s: stream from %s broke mid-way: %s",
                self.call.request_id,
                dep.name,
                type(exc).__name__,
            )
            error = {
                "error": {
                    "message": f"upstream {dep.name} failed mid-stream",
                    "type": "server_error",
                    "code": "upstream_stream_broken",
                }
            }
            yield b"data: " + json.dumps(error).encode() + b"\n\n"
        finally:
            await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.state.in_flight -= 1
        self.resp.close()
        in_tokens, out_tokens = _usage_from_sse(self.usage_tail)
        if not out_tokens:
            in_tokens, out_tokens = self.call.input_estimate // 4, self.deltas
        dep = self.state.config
        self.gateway._settle(
            self.call, dep.name, in_tokens, out_tokens, dep.cost(in_tokens, out_tokens), self.status
        )
        with anyio.CancelScope(shield=True), contextlib.suppress(RuntimeError, UpstreamError):
            await self.chunks.aclose()  # RuntimeError: still running in a cancelled task


class _ClosingStream(StreamingResponse):
    """A StreamingResponse that watches for the client leaving and then always closes its relay.

    Starlette stops watching for disconnects under ASGI 2.4 (uvicorn's sends after a disconnect just
    return), so a dropped client would keep pulling the upstream to its end, or hold the budget until the
    upstream's timeout when it stalls; here the disconnect cancels the relay at once, whether it comes
    before the first byte or mid-stream.
    """

    def __init__(self, content: AsyncIterator[bytes], on_close: Any, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream_then_stop() -> None:
                    with contextlib.suppress(OSError):  # the client went away (ASGI 2.4 servers raise)
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream_then_stop)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                closer = getattr(self.body_iterator, "aclose", None)
                if closer is not None:
                    await closer()
                await self._on_close()


def _usage_from_sse(tail: bytes) -> tuple[int, int]:
    for line in reversed(tail.split(b"\n")):
        if line.startswith(b"data: {") and b'"usage"' in line:
            try:
                usage = json.loads(line[6:]).get("usage") or {}
                return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            except (ValueError, AttributeError):
                return 0, 0
    return 0, 0


async def _sse_from_completion(parsed: dict[str, Any], path: str) -> AsyncIterator[bytes]:
    base: dict[str, Any] = {k: parsed[k] for k in ("id", "created", "model") if k in parsed}
    choice = (parsed.get("choices") or [{}])[0]
    if path == "chat/completions":
        text = (choice.get("message") or {}).get("content") or ""
        base["object"] = "chat.completion.chunk"
        first = {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}],
        }
        last = {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason", "stop")}],
            "usage": parsed.get("usage"),
        }
    else:
        base["object"] = "text_completion"
        first = {**base, "choices": [{"index": 0, "text": choice.get("text", ""), "finish_reason": None}]}
        last = {
            **base,
            "choices": [{"index": 0, "text": "", "finish_reason": choice.get("finish_reason", "stop")}],
            "usage": parsed.get("usage"),
        }
    for event in (first, last):
        yield b"data: " + json.dumps(event).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"
