"""Backend configuration (pydantic, loadable from YAML) and the factory that turns it into a Backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rankroute.backends.base import Backend
from rankroute.backends.cost import call_cost_usd
from rankroute.data.errors import DataError


class BackendConfig(BaseModel):
    """How to reach one model: an OpenAI-compatible server (`openai`) or an in-process GGUF (`local`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="the model name outcomes are recorded under")
    kind: Literal["openai", "local"] = "openai"
    model: str | None = Field(default=None, description="model id sent to the server (defaults to name)")
    base_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(default=None, description="environment variable holding the API key")
    timeout_s: float = Field(default=60.0, gt=0, description="read/write/pool timeout per attempt")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    max_concurrency: int = Field(default=8, ge=1)
    max_retries: int = Field(default=3, ge=0)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=20.0, ge=0)
    stream: bool = Field(default=True, description="stream responses to measure time to first token")
    http_transport: Literal["aiohttp", "httpx"] = Field(
        default="aiohttp",
        description="HTTP client: aiohttp (default; scales with concurrency) or httpx's own transport",
    )
    input_price_per_m: float | None = Field(default=None, ge=0, description="USD per 1M input tokens")
    output_price_per_m: float | None = Field(default=None, ge=0, description="USD per 1M output tokens")
    usd_per_hour: float | None = Field(
        default=None, ge=0, description="self-served: USD per hour of wall time"
    )
    local_model: str | None = Field(
        default=None, description="catalogue name, .gguf path or hub id owner/repo[:file.gguf]"
    )
    n_ctx: int = Field(default=2048, ge=128)
    n_threads: int | None = Field(default=None, ge=1)
    engine: Literal["auto", "xllamacpp", "llama-cpp-python"] = Field(
        default="auto", description="kind local: the in-process engine (auto: xllamacpp if installed)"
    )

    @model_validator(mode="after")
    def _kind_needs(self) -> BackendConfig:
        if self.kind == "openai" and not self.base_url:
            raise ValueError(
                f"backend {self.name!r}: kind 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1)"
            )
        return self

    @property
    def model_id(self) -> str:
        return self.model or self.name

    def call_cost_usd(self, input_tokens: int, output_tokens: int, latency_ms: float) -> float | None:
        """USD for one call at this backend's prices (None when it has none)."""
        return call_cost_usd(
            input_tokens,
            output_tokens,
            latency_ms,
            input_price_per_m=self.input_price_per_m,
            output_price_per_m=self.output_price_per_m,
            usd_per_hour=self.usd_per_hour,
        )


def load_backend_configs(path: str | Path) -> list[BackendConfig]:
    """Backends from a YAML file holding a list, or a mapping with a `backends:` list."""
    source = str(path)
    try:
        loaded: Any = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise DataError(f"cannot read backend config: {error.strerror}", source=source) from error
    except yaml.YAMLError as error:
        raise DataError(f"not valid YAML: {error}", source=source) from error
    entries = loaded.get("backends") if isinstance(loaded, dict) else loaded
    if not isinstance(entries, list):
        raise DataError("expected a list of backends (or a mapping with a 'backends' list)", source=source)
    configs = []
    for index, entry in enumerate(entries):
        try:
            configs.append(BackendConfig.model_validate(entry))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "entry"
            raise DataError(f"{where}: {first['msg']}", source=source, row=index) from error
    return configs


def make_backend(config: BackendConfig) -> Backend:
    """The Backend a config describes (local models load lazily, on the first request)."""
    if config.kind == "local":
        from rankroute.backends.local import LocalBackend, local_engine

        if local_engine(config.engine) == "llama-cpp-python":
            from rankroute.backends.llama_cpp_python import LlamaCppPythonBackend

            return LlamaCppPythonBackend(config)
        return LocalBackend(config)
    from rankroute.backends.openai_http import OpenAIBackend

    return OpenAIBackend(config)
