"""The FastAPI face of the gateway: OpenAI-compatible endpoints, health, metrics, admin and feedback.

Request bodies of the hot endpoints are read as raw bytes (the schema below documents them in the OpenAPI
spec without re-validating every body through pydantic on the hot path).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from rankroute.data import Battle, Outcome, OutcomeStore, Prompt
from rankroute.data.errors import DataError
from rankroute.route.base import Router
from rankroute.serve.config import GatewayConfig
from rankroute.serve.errors import GatewayError, error_response
from rankroute.serve.gateway import Gateway, prompt_id_for, shared_state_error
from rankroute.serve.guardrails import Hook
from rankroute.serve.limits import SharedStateUnavailable
from rankroute.serve.ui import mount_ui

log = logging.getLogger("rankroute.serve")

_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "user", "assistant", "tool", "developer"]},
        "content": {"type": "string"},
        "name": {"type": "string"},
    },
}
_COMMON = {
    "model": {"type": "string", "minLength": 1},
    "stream": {"type": "boolean"},
    "max_tokens": {"type": "integer", "minimum": 1},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "seed": {"type": "integer"},
    "n": {"type": "integer", "minimum": 1},
    "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "user": {"type": "string"},
}
CHAT_SCHEMA = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {**_COMMON, "messages": {"type": "array", "minItems": 1, "items": _MESSAGE}},
}
COMPLETION_SCHEMA = {
    "type": "object",
    "required": ["model", "prompt"],
    "properties": {
        **_COMMON,
        "prompt": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    },
}


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    budget_usd: float | None = Field(
        default=None, ge=0, le=1e9, allow_inf_nan=False, description="USD this key may spend in all"
    )
    rpm: int | None = Field(default=None, gt=0, le=10**9)
    tpm: int | None = Field(default=None, gt=0, le=10**12)


class Feedback(BaseModel):
    """A rating of one response, or a preference between two responses to the same prompt."""

    model_config = ConfigDict(extra="forbid")

    response_id: str = Field(min_length=1)
    rating: float | None = Field(default=None, ge=0, le=1, description="quality in [0, 1]")
    other_response_id: str | None = None
    winner: Literal["this", "other", "tie"] | None = None


HOT_PATHS = {"/v1/chat/completions": "chat/completions", "/v1/completions": "completions"}


class GatewayApp(FastAPI):
    """FastAPI app whose two hot endpoints skip FastAPI's middleware and routing layers.

    The routes stay registered (OpenAPI spec, docs); __call__ answers them directly, which saves a
    measurable share of the gateway's per-request overhead.
    """

    gateway: Gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in HOT_PATHS:
            try:
                response = await self.gateway.handle(Request(scope, receive), HOT_PATHS[scope["path"]])
            except GatewayError as exc:
                response = exc.response()
            except Exception as exc:
                log.exception("unexpected gateway error")
                response = error_response(
                    500, f"internal gateway error: {type(exc).__name__}", type="server_error"
                )
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    config: GatewayConfig,
    *,
    routers: dict[str, Router] | None = None,
    hooks_before: list[Hook] | None = None,
    hooks_after: list[Hook] | None = None,
    admin_key: str | None = None,
    seed: int | None = None,
) -> GatewayApp:
    """The gateway app. `routers` passes fitted routers by name (else each router's `path` is loaded)."""
    gateway = Gateway(
        config,
        routers=routers,
        hooks_before=hooks_before,
        hooks_after=hooks_after,
        admin_key=admin_key,
        seed=seed,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.close()

    app = GatewayApp(
        title="rankroute gateway",
        version="0.1.0",
        description="OpenAI-compatible gateway that routes each request to the right model.",
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.gateway = gateway

    @app.exception_handler(GatewayError)
    async def _gateway_error(_: Request, exc: GatewayError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return error_response(400, f"invalid request: {first.get('msg')}", param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(exc.status_code, str(exc.detail), type=kind)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected gateway error")
        return error_response(500, f"internal gateway error: {type(exc).__name__}", type="server_error")

    @app.post("/v1/chat/completions", openapi_extra=_body_doc(CHAT_SCHEMA), tags=["openai"])
    async def chat_completions(request: Request) -> Response:
        """OpenAI chat completions (streaming and not), routed."""
        return await gateway.handle(request, "chat/completions")

    @app.post("/v1/completions", openapi_extra=_body_doc(COMPLETION_SCHEMA), tags=["openai"])
    async def completions(request: Request) -> Response:
        """OpenAI legacy completions (streaming and not), routed."""
        return await gateway.handle(request, "completions")

    @app.get("/v1/models", tags=["openai"])
    async def models(request: Request) -> dict[str, Any]:
        await gateway.authenticate(request)
        now = int(time.time())
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": now, "owned_by": "rankroute"}
                for m in gateway.public_models
            ],
        }

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    async def ready() -> Response:
        """Readiness: deployments known and at least one group has a closed or half-open breaker."""
        state = gateway.ready()
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/keys", tags=["admin"], status_code=201)
    async def create_key(request: Request, spec: NewKey) -> dict[str, Any]:
        """Create a virtual key; its secret is shown in this answer only (the gateway keeps a hash)."""
        gateway.check_admin(request)
        secret, key = await gateway.store.create_key(spec.name, spec.budget_usd, spec.rpm, spec.tpm)
        return {**key.public(), "key": secret}

    @app.get("/admin/keys", tags=["admin"])
    async def list_keys(request: Request) -> dict[str, Any]:
        gateway.check_admin(request)
        await gateway.store.refresh_keys()
        keys = gateway.store.list_keys()
        try:
            books = await gateway.budgets.snapshot(k.key_id for k in keys)
        except SharedStateUnavailable as exc:
            raise shared_state_error(exc) from exc
        return {
            "data": [
                {**k.public(), "spent_usd": books[k.key_id][0], "reserved_usd": books[k.key_id][1]}
                for k in keys
            ]
        }

    @app.delete("/admin/keys/{key_id}", tags=["admin"])
    async def revoke_key(request: Request, key_id: str) -> dict[str, Any]:
        gateway.check_admin(request)
        try:
            revoked = await gateway.revoke_key(key_id)
        except SharedStateUnavailable as exc:
            raise shared_state_error(exc) from exc
        if not revoked:
            raise GatewayError(404, f"no live key {key_id!r}", type="not_found_error", code="key_not_found")
        return {"key_id": key_id, "revoked": True}

    @app.get("/admin/spend", tags=["admin"])
    async def spend(request: Request, limit: int = 100) -> dict[str, Any]:
        gateway.check_admin(request)
        if not 1 <= limit <= 10_000:
            raise GatewayError(400, "limit must be between 1 and 10000", param="limit")
        return {"data": await gateway.store.spend_rows(limit)}

    @app.get("/admin/shadow", tags=["admin"])
    async def shadow(request: Request) -> dict[str, Any]:
        gateway.check_admin(request)
        rows = await gateway.store.shadow_rows()
        agree = sum(r["served_model"] == r["shadow_model"] for r in rows)
        return {"data": rows, "agreement": agree / len(rows) if rows else None}

    @app.post("/v1/feedback", tags=["learning"])
    async def feedback(request: Request, item: Feedback) -> dict[str, Any]:
        """Store a rating as an Outcome, or a preference as a Battle, in the outcome store."""
        await gateway.authenticate(request)
        return await record_feedback(gateway, item)

    mount_ui(app, gateway)
    return app


async def record_feedback(gateway: Gateway, item: Feedback) -> dict[str, Any]:
    path = gateway.config.storage.outcome_store
    if path is None:
        raise GatewayError(
            409, "feedback is off: set storage.outcome_store in the gateway config", code="feedback_disabled"
        )
    seen = gateway.recent.get(item.response_id)
    if seen is None:
        raise GatewayError(404, f"unknown or expired response_id {item.response_id!r}", param="response_id")
    if (item.rating is None) == (item.winner is None):
        raise GatewayError(400, "send exactly one of 'rating' or ('other_response_id' and 'winner')")
    prompt_text, model, answer = seen
    prompt = Prompt(prompt_id=prompt_id_for(prompt_text), text=prompt_text, dataset="gateway")
    if item.rating is not None:
        outcome = Outcome(
            prompt_id=prompt.prompt_id,
            model=model,
            quality=item.rating,
            metric="user_rating",
            response=answer,
            run_id="gateway-feedback",
            config_key=item.response_id,
        )

        def write_outcome() -> None:
            with OutcomeStore(path) as store, store.transaction():
                store.write_prompts([prompt])
                store.write_outcomes([outcome])

        await _write(write_outcome)
        return {"stored": "outcome", "prompt_id": prompt.prompt_id, "model": model}
    if item.other_response_id is None:
        raise GatewayError(400, "'winner' needs 'other_response_id'", param="other_response_id")
    other = gateway.recent.get(item.other_response_id)
    if other is None:
        raise GatewayError(
            404, f"unknown or expired response_id {item.other_response_id!r}", param="other_response_id"
        )
    if other[1] == model:
        raise GatewayError(
            400, f"both responses came from {model!r}; a preference needs two different models"
        )
    winner = {"this": "model_a", "other": "model_b", "tie": "tie"}[item.winner or "tie"]
    battle = Battle(model_a=model, model_b=other[1], winner=winner, prompt_id=prompt.prompt_id, judge="user")

    def write_battle() -> None:
        with OutcomeStore(path) as store, store.transaction():
            store.write_prompts([prompt])
            store.write_battles([battle])

    await _write(write_battle)
    return {"stored": "battle", "prompt_id": prompt.prompt_id, "model_a": model, "model_b": other[1]}


async def _write(fn: Any) -> None:
    try:
        await asyncio.to_thread(fn)
    except DataError as exc:
        raise GatewayError(409, f"feedback not stored: {exc}", code="feedback_conflict") from exc
