"""The per model x task summary the demo and `python -m rankroute.evaluate.summary` print, read back from
a store: hand-computed quality, cost, latency percentiles, tokens/s and peak memory per (model, task)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankroute.data.records import Outcome, Prompt
from rankroute.data.store import OutcomeStore
from rankroute.evaluate.summary import main, summarize_store


def _fill(store: OutcomeStore) -> None:
    prompts = [
        Prompt(prompt_id=f"{task}/{i}", text=f"q{i}", dataset=task)
        for task in ("arc", "gsm8k")
        for i in range(4)
    ]
    store.write_prompts(prompts)
    outcomes = []
    for i in range(4):
        outcomes.append(
            Outcome(
                prompt_id=f"arc/{i}",
                model="m",
                quality=float(i % 2),
                metric="acc_norm",
                config_key="k-arc",
                latency_ms=100.0 * (i + 1),
                cost_usd=0.001,
                extra={"tokens_per_s": 10.0 * (i + 1), "peak_rss_mb": 500.0 + i},
            )
        )
        outcomes.append(
            Outcome(
                prompt_id=f"gsm8k/{i}",
                model="m",
                quality=float(i == 0),
                metric="numeric_match",
                config_key="k-gsm",
                latency_ms=1000.0,
                cost_usd=0.002,
                extra={"tokens_per_s": 5.0, "peak_rss_mb": 700.0},
            )
        )
    store.write_outcomes(outcomes)


def test_store_summary_has_one_row_per_model_and_task(store: OutcomeStore) -> None:
    _fill(store)
    summary = summarize_store(store).set_index("task")
    arc, gsm8k = summary.loc["arc"], summary.loc["gsm8k"]
    assert arc["n"] == 4 and arc["quality"] == 0.5 and arc["cost_usd"] == pytest.approx(0.004)
    assert arc["latency_p50_ms"] == 250.0 and arc["latency_p95_ms"] == pytest.approx(385.0)
    assert arc["tokens_per_s"] == 25.0 and arc["peak_rss_mb"] == 503.0
    assert gsm8k["quality"] == 0.25 and gsm8k["tokens_per_s"] == 5.0


def test_summary_command_prints_every_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        with OutcomeStore(tmp_path / f"{name}.duckdb") as store:
            _fill(store)
    main([str(tmp_path / "a.duckdb"), str(tmp_path / "b.duckdb")])
    printed = capsys.readouterr().out
    assert printed.count("gsm8k") == 2 and printed.count("arc") == 2
