"""The declarative task definition: a pydantic model, loadable from YAML: what to ask and how to score."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

TaskKind = Literal["generate", "multiple_choice", "code", "judge"]

Metric = Literal[
    "exact_match",
    "numeric_match",
    "token_f1",
    "choice",
    "truthfulqa_mc2",
    "rouge",
    "translation",
    "truthfulqa_generation",
    "pass_at_k",
    "judge_rating",
]

Extraction = Literal["none", "first_line", "number", "letter", "code"]
"""`number`: the stated final answer ("The final answer is 18", "#### 18", "\\boxed{18}"), else the last
number in the answer."""


class DataSource(BaseModel):
    """Where the rows come from: exactly one of `shared` (a path under the shared data folder), `path`
    (a user's JSONL/JSON/CSV/Parquet file) or `hf` (a Hugging Face dataset id, loaded with `datasets`)."""

    model_config = ConfigDict(extra="forbid")

    shared: str | None = None
    path: Path | None = None
    hf: str | None = None
    hf_config: str | None = None
    split: str = "test"

    @model_validator(mode="after")
    def _exactly_one(self) -> DataSource:
        given = [name for name in ("shared", "path", "hf") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a data source needs exactly one of shared, path, hf; got {given or 'none'}")
        return self

    def describe(self) -> str:
        if self.shared is not None:
            return f"shared:{self.shared}"
        if self.path is not None:
            return str(self.path)
        return f"hf:{self.hf}" + (f"/{self.hf_config}" if self.hf_config else "") + f"[{self.split}]"


class FewShot(BaseModel):
    """k solved examples shown before each prompt, drawn with a seed (per prompt, so stable across runs)
    from `source` (a dev split) when given, else from the task's other rows."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=0, ge=0)
    source: DataSource | None = None
    same_category: bool = False
    seed: int = 1234
    adapter_options: dict[str, Any] | None = Field(
        default=None, description="adapter options for the few-shot source (default: the task's)"
    )


class TaskSpec(BaseModel):
    """A task in full. `adapter` names the function that turns one raw row into template fields, a target
    and choices (`columns` for user files); `template` is a jinja2 template over those fields."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    kind: TaskKind = "generate"
    source: DataSource
    adapter: str = "columns"
    adapter_options: dict[str, Any] = Field(default_factory=dict)
    system: str | None = None
    template: str = "{{ input }}"
    completion_template: str | None = Field(
        default=None, description="plain-text prompt for completion models; default: the chat template"
    )
    answer_template: str = "{{ reference }}"
    fewshot: FewShot = Field(default_factory=FewShot)
    extraction: Extraction = "none"
    metric: Metric = "exact_match"
    choice_format: Literal["letter", "text", "partial"] = Field(
        default="letter",
        description="what log-likelihood scores after the context: ' A'..' D' (letter), each option's "
        "text (text), or the shared rest of the sentence after the context with each option filled in "
        "(partial: WinoGrande's partial scoring; the adapter gives `context_options` and `continuation`)",
    )
    loglikelihood_template: str | None = Field(
        default=None,
        description="the context scored options follow (lm-eval's doc_to_text); default: the plain prompt",
    )
    choice_metric: Literal["acc", "acc_norm"] = Field(
        default="acc",
        description="which log-likelihood accuracy is the outcome's quality: acc (raw) or acc_norm "
        "(log-likelihood per byte of the option, as lm-eval reports for ARC and HellaSwag); both are stored",
    )
    stop: list[str] | None = Field(default=None, description="stop sequences for generated answers")
    max_tokens: int | None = Field(default=None, gt=0, description="generation budget for this task")
    k_values: list[int] = Field(default_factory=lambda: [1], description="pass@k reported by aggregate")
    judge_prompt: str | None = Field(default=None, description="judge prompt name (judge tasks)")
    judge_reference_prompt: str | None = Field(
        default=None, description="judge prompt for categories with a reference answer"
    )
    target_language: str | None = Field(default=None, description="translation target (BLEU tokenizer)")

    @model_validator(mode="before")
    @classmethod
    def _default_metric_for_kind(cls, data: Any) -> Any:
        """A task that names only its kind gets that kind's usual metric."""
        if isinstance(data, dict) and "metric" not in data:
            defaults = {"multiple_choice": "choice", "code": "pass_at_k", "judge": "judge_rating"}
            return {**data, "metric": defaults.get(data.get("kind", "generate"), "exact_match")}
        return data

    @field_validator("metric")
    @classmethod
    def _metric_fits_kind(cls, metric: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind", "generate")
        allowed: dict[str, set[str]] = {
            "multiple_choice": {"choice", "truthfulqa_mc2"},
            "code": {"pass_at_k"},
            "judge": {"judge_rating"},
            "generate": {
                "exact_match",
                "numeric_match",
                "token_f1",
                "rouge",
                "translation",
                "truthfulqa_generation",
            },
        }
        if metric not in allowed[kind]:
            raise ValueError(
                f"metric {metric!r} does not fit kind {kind!r}; use one of {sorted(allowed[kind])}"
            )
        return metric
