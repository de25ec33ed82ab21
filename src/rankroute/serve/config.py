"""The gateway's one YAML config, validated by pydantic so a broken file fails at start with a clear line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rankroute.data.errors import DataError

Strategy = Literal["weighted", "least-busy", "latency"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeploymentConfig(_Strict):
    """One place a model runs: an OpenAI-compatible HTTP upstream, or an in-process local model."""

    name: str = Field(min_length=1, description="unique deployment name, shown in x-rankroute-deployment")
    group: str | None = Field(default=None, description="public model name clients ask for (default: name)")
    model: str | None = Field(default=None, description="model name sent upstream (default: group)")
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL, e.g. http://h:8000/v1"
    )
    api_key_env: str | None = Field(default=None, description="environment variable holding the upstream key")
    local: str | None = Field(default=None, description="in-process local model, e.g. smollm2-135m")
    input_price_per_m: float = Field(default=0.0, ge=0, description="USD per 1M input tokens")
    output_price_per_m: float = Field(default=0.0, ge=0, description="USD per 1M output tokens")
    weight: float = Field(default=1.0, gt=0)
    rpm: int | None = Field(default=None, gt=0, description="requests per minute this deployment accepts")
    tpm: int | None = Field(default=None, gt=0, description="tokens per minute this deployment accepts")
    timeout_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> DeploymentConfig:
        if (self.base_url is None) == (self.local is None):
            raise ValueError(f"deployment {self.name!r} needs exactly one of base_url or local")
        return self

    @property
    def group_name(self) -> str:
        return self.group or self.name

    @property
    def upstream_model(self) -> str:
        return self.model or self.group_name

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_price_per_m + output_tokens * self.output_price_per_m) / 1e6


class GroupConfig(_Strict):
    """How to spread load across the deployments of one public model."""

    strategy: Strategy = "weighted"


class RouterModelConfig(_Strict):
    """A virtual model (e.g. rankroute/auto) backed by a router trained with `rankroute route train`."""

    name: str = Field(min_length=1)
    path: str | None = Field(default=None, description="router file written by `rankroute route train`")
    willingness_to_pay: float = Field(default=1.0, gt=0, description="USD a unit of quality is worth")
    models: dict[str, str] = Field(
        default_factory=dict, description="router model name -> gateway group (default: the same name)"
    )
    shadow: str | None = Field(default=None, description="candidate router file that decides without serving")


class ABTestConfig(_Strict):
    """A virtual model whose traffic is split between arms, sticky per user or key."""

    name: str = Field(min_length=1)
    arms: dict[str, float] = Field(min_length=1, description="model or router name -> traffic share")
    sticky_by: Literal["user", "key"] = "user"


class KeysConfig(_Strict):
    required: bool = Field(default=False, description="refuse requests without a valid virtual key")
    admin_key_env: str = "RANKROUTE_ADMIN_KEY"


class CacheConfig(_Strict):
    """Exact-match response cache: in process, or in Redis (shared by replicas) with storage.redis_url."""

    enabled: bool = False
    ttl_s: float = Field(default=600.0, gt=0)
    max_entries: int = Field(default=10_000, gt=0)
    sampled: bool = Field(
        default=False, description="also cache requests without temperature 0 or a seed (sampled answers)"
    )


class StorageConfig(_Strict):
    ledger: str = Field(default="rankroute-gateway.sqlite", description="SQLite path or postgresql:// DSN")
    redis_url: str | None = Field(
        default=None,
        description="Redis shared by replicas: rate limits, budgets, revocations and the response cache",
    )
    hold_ttl_s: float = Field(
        default=900.0,
        gt=0,
        description="seconds a budget hold lives: a crashed replica's holds come back after this",
    )
    outcome_store: str | None = Field(
        default=None, description="outcome store feedback goes to: DuckDB path or postgresql:// URL"
    )


class GuardrailsConfig(_Strict):
    max_input_chars: int | None = Field(default=None, gt=0)
    redact_pii: bool = False


class RetryConfig(_Strict):
    attempts: int = Field(default=2, ge=0, description="retries per deployment on a retryable error")
    backoff_s: float = Field(default=0.05, ge=0)
    breaker_failures: int = Field(default=3, ge=1, description="consecutive failures that open the breaker")
    breaker_cooldown_s: float = Field(default=10.0, gt=0)


class UIConfig(_Strict):
    """The report and live figures served at /ui (admin key required)."""

    outcome_store: str | None = Field(default=None, description="store the report reads (default: storage's)")
    route_evals: list[str] = Field(default_factory=list, description="`rankroute route eval --out` folders")
    cache_s: float = Field(default=60.0, ge=0, description="seconds a rendered report is reused")
    bootstrap: int = Field(default=0, ge=0, le=1000, description="bootstrap rounds for leaderboard CIs")
    live_window: int = Field(default=5000, gt=0, le=1_000_000, description="latest ledger rows summarised")
    refresh_s: float = Field(default=5.0, ge=0.5, description="seconds between live refreshes in the page")


class GatewayConfig(_Strict):
    deployments: list[DeploymentConfig] = Field(min_length=1)
    groups: dict[str, GroupConfig] = Field(default_factory=dict)
    routers: list[RouterModelConfig] = Field(default_factory=list)
    ab_tests: list[ABTestConfig] = Field(default_factory=list)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict, description="group -> groups to try next")
    retries: RetryConfig = Field(default_factory=RetryConfig)
    keys: KeysConfig = Field(default_factory=KeysConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig)
    ui: UIConfig = Field(default_factory=UIConfig)

    @model_validator(mode="after")
    def _consistent(self) -> GatewayConfig:
        names = [d.name for d in self.deployments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"deployment names must be unique; repeated: {dupes}")
        groups = self.group_names
        virtual = [r.name for r in self.routers] + [t.name for t in self.ab_tests]
        clash = sorted(set(virtual) & groups)
        if clash:
            raise ValueError(f"router/A-B names clash with deployment groups: {clash}")
        for name in self.groups:
            if name not in groups:
                raise ValueError(f"groups: {name!r} has no deployment (known groups: {sorted(groups)})")
        for source, chain in self.fallbacks.items():
            for name in [source, *chain]:
                if name not in groups:
                    raise ValueError(f"fallbacks: {name!r} is not a deployment group ({sorted(groups)})")
        for test in self.ab_tests:
            for arm in test.arms:
                if arm not in groups and arm not in {r.name for r in self.routers}:
                    raise ValueError(f"ab_tests {test.name!r}: arm {arm!r} is neither a group nor a router")
        return self

    @property
    def group_names(self) -> set[str]:
        return {d.group_name for d in self.deployments}


def load_config(source: str | os.PathLike[str] | dict[str, Any]) -> GatewayConfig:
    """Read and validate a gateway config; any problem becomes one DataError naming the field."""
    where = None
    if isinstance(source, dict):
        raw: Any = source
    else:
        where = str(source)
        path = Path(source)
        if not path.is_file():
            raise DataError(
                "gateway config not found", source=where, hint="pass --config path/to/gateway.yaml"
            )
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise DataError(f"not valid YAML: {exc}", source=where) from exc
    if not isinstance(raw, dict):
        raise DataError("the config must be a YAML mapping with a 'deployments' list", source=where)
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise DataError(
            f"{first['msg']} ({exc.error_count()} problem(s) in all)",
            source=where,
            column=field,
            hint="see examples/gateway.yaml",
        ) from exc
