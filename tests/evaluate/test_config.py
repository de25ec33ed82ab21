"""The eval config: YAML in, validated pydantic out, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankroute.backends import BackendConfig, DecodingParams
from rankroute.data import DataError
from rankroute.evaluate import EvalConfig, load_eval_config, outcome_config_key, stable_hash

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_examples_load_and_resolve_paths_against_the_file() -> None:
    config = load_eval_config(EXAMPLES / "eval.yaml")
    assert [m.name for m in config.models] == ["smollm2-135m", "qwen2.5-coder-0.5b"]
    assert [(t.name, t.limit) for t in config.tasks] == [("arc_challenge", 200), ("mmlu", 200)]
    assert (
        config.store is not None and config.store.resolve() == EXAMPLES.parent / "runs/eval/rankroute.duckdb"
    )
    hosted = load_eval_config(EXAMPLES / "eval-openai.yaml")
    assert hosted.judge is not None and hosted.tasks[0].stratify == "category"


def test_a_postgres_store_url_is_kept_as_written(tmp_path: Path) -> None:
    """Relative store paths resolve against the YAML's folder; a PostgreSQL URL is not a path."""
    url = "postgresql://me@db.internal:5432/rankroute"
    path = tmp_path / "e.yaml"
    head = "models: [{name: m, base_url: 'http://127.0.0.1:1/v1'}]\ntasks: [gsm8k]\n"
    path.write_text(f"{head}store: {url}\n")
    assert load_eval_config(path).store == url
    path.write_text(f"{head}store: s.duckdb\n")
    assert load_eval_config(path).store == tmp_path / "s.duckdb"


def test_overrides_apply_to_every_task(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("models: [{name: m, base_url: 'http://127.0.0.1:1/v1'}]\ntasks: [gsm8k, {name: mmlu}]\n")
    config = load_eval_config(path).with_overrides(limit=7, seed=3, executor="ray", concurrency=2)
    assert [(t.limit, t.seed) for t in config.tasks] == [(7, 3), (7, 3)]
    assert (config.executor, config.concurrency) == ("ray", 2)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("tasks: [gsm8k]\n", "models"),
        ("models: []\ntasks: [gsm8k]\n", "models"),
        ("models: [{name: m, base_url: 'http://x/v1'}]\ntasks: [gsm8k]\nexecutor: spark\n", "executor"),
        ("models: [{name: m, base_url: 'http://x/v1'}]\ntasks: [{name: gsm8k, limit: 0}]\n", "tasks.0.limit"),
        ("models: [{name: m, base_url: 'http://x/v1'}]\ntasks: [gsm8k]\nbogus: 1\n", "bogus"),
        (
            "models: [{name: m, base_url: 'http://x/v1'}, {name: m, base_url: 'http://y/v1'}]\n"
            "tasks: [gsm8k]\n",
            "distinct",
        ),
        (
            "models: [{name: m, kind: local, local_model: x}]\ntasks: [gsm8k]\ndecoding: {temperature: -1}\n",
            "decoding.temperature",
        ),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=named.replace(".", r"\.")):
        load_eval_config(path)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("models: [unclosed\n")
    with pytest.raises(DataError, match="not valid YAML"):
        load_eval_config(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(DataError, match="mapping"):
        load_eval_config(path)


class _Task:
    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind


@settings(max_examples=50, deadline=None)
@given(
    temperature=st.floats(0, 2),
    max_tokens=st.integers(1, 4096),
    model=st.sampled_from(["a", "b"]),
    task=st.sampled_from(["gsm8k", "mmlu"]),
)
def test_config_key_is_stable_and_separates_configs(
    temperature: float, max_tokens: int, model: str, task: str
) -> None:
    backend = BackendConfig(name=model, base_url="http://127.0.0.1:1/v1")
    params = DecodingParams(temperature=temperature, max_tokens=max_tokens)
    key = outcome_config_key(_Task(task, "generate"), backend, params)  # type: ignore[arg-type]
    # the URL, timeouts and price do not change answers; model, task and decoding do
    moved = backend.model_copy(update={"base_url": "http://10.0.0.1/v1", "timeout_s": 5, "usd_per_hour": 2})
    assert key == outcome_config_key(_Task(task, "generate"), moved, params)  # type: ignore[arg-type]
    other_params = params.model_copy(update={"max_tokens": max_tokens + 1})
    assert key != outcome_config_key(_Task(task, "generate"), backend, other_params)  # type: ignore[arg-type]
    other_model = backend.model_copy(update={"name": model + "x"})
    assert key != outcome_config_key(_Task(task, "generate"), other_model, params)  # type: ignore[arg-type]
    assert key != outcome_config_key(_Task(task + "x", "generate"), backend, params)  # type: ignore[arg-type]
    assert len(key) == 16 and stable_hash({"b": 1, "a": 2}) == stable_hash({"a": 2, "b": 1})


def test_eval_config_defaults_are_greedy() -> None:
    config = EvalConfig(models=[BackendConfig(name="m", base_url="http://x/v1")], tasks=[{"name": "gsm8k"}])  # type: ignore[list-item]
    assert (
        config.decoding.temperature == 0.0 and config.executor == "local" and config.multiple_choice == "auto"
    )
