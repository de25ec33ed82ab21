"""The evaluation config: which models run which tasks, how they decode, and where outcomes go.

Loaded from YAML into pydantic models so a broken config fails before any model is called, with an error
naming the field that is wrong.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rankroute.backends import BackendConfig, DecodingParams
from rankroute.data.errors import DataError
from rankroute.data.store import is_postgres_url


def greedy_decoding() -> DecodingParams:
    """The default: greedy, short enough for multiple choice and grade-school maths."""
    return DecodingParams(temperature=0.0, max_tokens=256)


class TaskSpec(BaseModel):
    """One task to run: a built-in name or a task YAML path, and which sample of it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="built-in task name, or path to a task YAML file")
    limit: int | None = Field(default=None, gt=0, description="at most this many prompts (None: all)")
    seed: int = 0
    stratify: str | None = Field(default=None, description="prompt field to stratify the sample on")
    max_tokens: int | None = Field(default=None, gt=0, description="overrides decoding.max_tokens")


class EvalConfig(BaseModel):
    """What `rankroute eval --config FILE` runs."""

    model_config = ConfigDict(extra="forbid")

    run_name: str = "eval"
    models: list[BackendConfig] = Field(min_length=1)
    tasks: list[TaskSpec] = Field(min_length=1)
    decoding: DecodingParams = Field(default_factory=greedy_decoding)
    store: str | Path | None = Field(
        default=None, description="outcome store: DuckDB path or postgresql:// URL (default: the user's)"
    )
    concurrency: int = Field(default=4, gt=0, description="requests in flight per model")
    judge: BackendConfig | None = Field(default=None, description="judge model for LLM-as-judge tasks")
    executor: Literal["local", "ray"] = "local"
    multiple_choice: Literal["auto", "loglikelihood", "generate"] = Field(
        default="auto",
        description="auto: by log-likelihood where the backend gives prompt log-probs, else by letter",
    )
    # Loss on a kill is bounded by flush_interval_s, not by this: a large batch only saves transactions
    # (~50 ms each; 4096 vs 256 raised the request phase 7-47 % at 1,000+ answers/s, docs/benchmarks.md).
    batch_size: int = Field(default=4096, gt=0, description="most outcomes per store transaction")
    flush_interval_s: float = Field(
        default=1.0, gt=0, description="store what is buffered at least this often (seconds)"
    )
    scoring_workers: int = Field(
        default=4, gt=0, description="threads scoring answers off the event loop (code tasks run tests)"
    )

    @field_validator("tasks", mode="before")
    @classmethod
    def _names_to_specs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _distinct_model_names(self) -> EvalConfig:
        names = [m.name for m in self.models]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"model names must be distinct; repeated: {repeated}")
        return self

    def with_overrides(
        self,
        *,
        limit: int | None = None,
        seed: int | None = None,
        stratify: str | None = None,
        executor: str | None = None,
        store: str | Path | None = None,
        concurrency: int | None = None,
    ) -> EvalConfig:
        """The same config with CLI flags applied to every task."""
        task_updates: dict[str, Any] = {}
        if limit is not None:
            task_updates["limit"] = limit
        if seed is not None:
            task_updates["seed"] = seed
        if stratify is not None:
            task_updates["stratify"] = stratify
        updates: dict[str, Any] = {"tasks": [t.model_copy(update=task_updates) for t in self.tasks]}
        if executor is not None:
            updates["executor"] = executor
        if store is not None:
            updates["store"] = store
        if concurrency is not None:
            updates["concurrency"] = concurrency
        return EvalConfig.model_validate({**self.model_dump(), **updates})


def _field_path(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(top level)"


def load_eval_config(path: str | Path) -> EvalConfig:
    """Read and validate an eval YAML; relative task and store paths resolve against the file's folder."""
    source = Path(path)
    if not source.exists():
        raise DataError(f"no config file at {source}", hint="pass --config PATH to an eval YAML")
    try:
        raw = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        raise DataError(f"not valid YAML: {exc}", source=str(source)) from exc
    if not isinstance(raw, dict):
        raise DataError("an eval config is a mapping with 'models' and 'tasks'", source=str(source))
    try:
        config = EvalConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise DataError(
            f"field {_field_path(dict(first))}: {first['msg']}",
            source=str(source),
            hint=f"{exc.error_count()} problem(s) in all; see examples/eval.yaml",
        ) from exc
    base = source.resolve().parent
    tasks = []
    for spec in config.tasks:
        candidate = base / spec.name
        is_file = spec.name.endswith((".yaml", ".yml")) and not Path(spec.name).is_absolute()
        tasks.append(spec.model_copy(update={"name": str(candidate)}) if is_file else spec)
    store = config.store
    if store is not None and not is_postgres_url(store) and not Path(store).is_absolute():
        store = base / store
    return config.model_copy(update={"tasks": tasks, "store": store})


def stable_hash(payload: Any) -> str:
    """16 hex characters of SHA-256 over canonical JSON: the same payload gives the same key anywhere."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
