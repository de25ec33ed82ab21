"""`rankroute route eval/train/predict`: the checks contract on the real shared folders, and bad input.

Commands run in-process through rankroute.cli.main (the real entry point, exit codes included).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from routing_data import routerbench_matrix

from rankroute.cli import main
from rankroute.data import OutcomeStore
from shared_data import shared_path

REQUIRED = ("dataset", "router", "aiq", "aiq_ci_low", "aiq_ci_high", "cost_range", "n_test_prompts")
BASELINES = "oracle,random,zero"


def run(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["rankroute", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else int(code)), captured.out, captured.err


def _singles(models: list[str]) -> str:
    return ",".join(f"single:{m}" for m in models)


@pytest.fixture
def long_jsonl(tmp_path: Path) -> Path:
    """300 RouterBench prompts x 3 models in rankroute's long format (one JSON object per outcome)."""
    matrix = routerbench_matrix().complete_rows()
    rng = np.random.default_rng(0)
    rows = rng.choice(matrix.n_prompts, size=300, replace=False)
    models = ["mistralai/mistral-7b-chat", "gpt-3.5-turbo-1106", "gpt-4-1106-preview"]
    path = tmp_path / "outcomes.jsonl"
    with path.open("w") as out:
        for i in rows:
            for model in models:
                j = matrix.models.index(model)
                record = {
                    "prompt_id": str(matrix.prompt_ids[i]),
                    "text": matrix.texts[i],
                    "dataset": str(matrix.datasets[i]),
                    "model": model,
                    "quality": float(matrix.quality[i, j]),
                    "cost_usd": float(matrix.cost[i, j]),
                }
                out.write(json.dumps(record) + "\n")
    return path


def test_eval_contract_on_routerbench_subset(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    folder = shared_path("routing", "routerbench-subset")
    out_json = tmp_path / "rows.json"
    models = routerbench_matrix().models
    args = ["route", "eval", "--data", str(folder), "--seed", "0", "--json", str(out_json)]
    args += [
        "--routers",
        f"{BASELINES},{_singles(models)}",
        "--bootstrap",
        "20",
        "--out",
        str(tmp_path / "run"),
    ]
    code, out, err = run(args, monkeypatch, capsys)
    assert code == 0, err
    rows = json.loads(out_json.read_text())
    assert {r["dataset"] for r in rows} == {"arc-challenge", "mbpp", "winogrande", "all"}
    expected_routers = {"oracle", "random", "zero", *(f"single:{m}" for m in models)}
    for dataset in ("arc-challenge", "mbpp", "winogrande", "all"):
        assert {r["router"] for r in rows if r["dataset"] == dataset} == expected_routers
    for row in rows:
        assert all(row[key] is not None for key in REQUIRED), row
        low, high = row["cost_range"]
        assert 0 < low < high
    assert "AIQ" in out and "oracle" in out
    run_dir = tmp_path / "run"
    report = json.loads((run_dir / "evaluation.json").read_text())
    assert report["rows"] == rows and len(report["willingness_to_pay_grid"]) == 49
    assert {c["router"] for c in report["calibration"]} == {"random"}
    assert (run_dir / "curves.png").stat().st_size > 10_000


def test_eval_contract_on_routellm_two_models(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    folder = shared_path("routing", "routellm-gpt4-mixtral")
    out_json = tmp_path / "rows.json"
    args = ["route", "eval", "--data", str(folder), "--seed", "0", "--json", str(out_json)]
    args += ["--routers", BASELINES, "--bootstrap", "20"]
    code, _, err = run(args, monkeypatch, capsys)
    assert code == 0, err
    rows = json.loads(out_json.read_text())
    assert {r["dataset"] for r in rows} == {"mmlu", "gsm8k", "mt_bench", "all"}
    for row in rows:
        assert all(row[key] is not None for key in REQUIRED)
        assert {"cpt50", "cpt80", "apgr"} <= set(row)
        assert row["strong_model"] == "gpt-4-1106-preview"
    zero = next(r for r in rows if r["dataset"] == "all" and r["router"] == "zero")
    assert zero["cpt50"] == pytest.approx(50.0) and zero["apgr"] == pytest.approx(0.5)
    assert sum(r["n_test_prompts"] for r in rows if r["router"] == "zero" and r["dataset"] != "all") == next(
        r["n_test_prompts"] for r in rows if r["router"] == "zero" and r["dataset"] == "all"
    )


def test_eval_accepts_rankroute_long_format(long_jsonl: Path, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    out_json = tmp_path / "rows.json"
    code, _, err = run(
        ["route", "eval", "--data", str(long_jsonl), "--json", str(out_json), "--routers", BASELINES],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    rows = json.loads(out_json.read_text())
    assert {r["router"] for r in rows} == {"oracle", "random", "zero"}
    assert next(r for r in rows if r["dataset"] == "all")["n_test_prompts"] == 90


def test_eval_and_train_read_the_outcome_store_as_the_file_it_came_from(  # type: ignore[no-untyped-def]
    long_jsonl: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """tasks -> evaluate -> store -> route: routers train on what the store holds, same rows as the file."""
    store = str(tmp_path / "store.duckdb")
    code, _, err = run(["data", "import", str(long_jsonl), "--store", store], monkeypatch, capsys)
    assert code == 0, err
    rows = {}
    for source in (["--data", str(long_jsonl)], ["--store", store]):
        out_json = tmp_path / f"rows{len(rows)}.json"
        args = ["route", "eval", *source, "--json", str(out_json), "--routers", f"{BASELINES},knn"]
        code, _, err = run(args, monkeypatch, capsys)
        assert code == 0, err
        rows[source[0]] = json.loads(out_json.read_text())
    assert rows["--store"] == rows["--data"]
    router_file = tmp_path / "knn.router"
    train = ["route", "train", "--store", store, "--router", "knn", "--out", str(router_file)]
    code, _, err = run(train, monkeypatch, capsys)
    assert code == 0 and router_file.exists(), err
    code, _, err = run(["route", "eval", "--data", str(long_jsonl), "--store", store], monkeypatch, capsys)
    _assert_one_line_error(code, err, "give exactly one of")
    empty = str(tmp_path / "empty.duckdb")
    assert run(["data", "info", "--store", empty], monkeypatch, capsys)[0] == 0  # creates it, empty
    code, _, err = run(["route", "eval", "--store", empty], monkeypatch, capsys)
    _assert_one_line_error(code, err, "holds no outcomes")


def test_store_with_two_runs_of_one_model_needs_run_id(  # type: ignore[no-untyped-def]
    long_jsonl: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    store = str(tmp_path / "store.duckdb")
    assert run(["data", "import", str(long_jsonl), "--store", store], monkeypatch, capsys)[0] == 0
    with OutcomeStore(store) as db:
        first = db.read_outcomes()
        (imported_run,) = first["run_id"].unique()
        rerun = first.drop(columns=["dataset", "category"]).assign(
            run_id="rerun", config_key="temperature-0.7", quality=1.0 - first["quality"]
        )
        db.write_outcomes(rerun)
    code, _, err = run(["route", "eval", "--store", store, "--routers", BASELINES], monkeypatch, capsys)
    _assert_one_line_error(code, err, "--run-id")
    assert "rerun" in err and imported_run in err
    rows = {}
    for source in (["--data", str(long_jsonl)], ["--store", store, "--run-id", imported_run]):
        out_json = tmp_path / f"rows{len(rows)}.json"
        args = ["route", "eval", *source, "--json", str(out_json), "--routers", BASELINES]
        code, _, err = run(args, monkeypatch, capsys)
        assert code == 0, err
        rows[source[0]] = json.loads(out_json.read_text())
    assert rows["--store"] == rows["--data"]
    code, _, err = run(["route", "eval", "--store", store, "--run-id", "nope"], monkeypatch, capsys)
    _assert_one_line_error(code, err, "holds no outcomes of run(s) ['nope']")
    code, _, err = run(["route", "eval", "--data", str(long_jsonl), "--run-id", "rerun"], monkeypatch, capsys)
    _assert_one_line_error(code, err, "give --store too")


def test_train_then_predict_with_willingness_and_budget(
    long_jsonl: Path,
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    router_file = tmp_path / "random.router"
    code, _, err = run(
        ["route", "train", "--data", str(long_jsonl), "--router", "random", "--out", str(router_file)],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert router_file.exists() and Path(str(router_file) + ".calibration.json").exists()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is the capital of France?\nWrite a function that reverses a list.\n")
    code, out, err = run(
        [
            "route",
            "predict",
            "--router",
            str(router_file),
            "--prompts",
            str(prompts),
            "--willingness-to-pay",
            "1e9",
        ],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    picks = [json.loads(line) for line in out.splitlines()]
    assert [p["model"] for p in picks] == ["gpt-4-1106-preview"] * 2  # the best model when money is no object
    code, out, err = run(
        ["route", "predict", "--router", str(router_file), "--prompt", "hi", "--budget", "0.0001"],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert json.loads(out)["model"] == "mistralai/mistral-7b-chat"  # nothing dearer fits 0.0001 USD / 1k
    assert "warning" in err


def _assert_one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert needle in lines[0], err


def test_missing_data_path(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(["route", "eval", "--data", str(tmp_path / "nope.parquet")], monkeypatch, capsys)
    _assert_one_line_error(code, err, "no such file")


def test_unknown_router(long_jsonl: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(
        ["route", "eval", "--data", str(long_jsonl), "--routers", "oracle,gpt-router"], monkeypatch, capsys
    )
    _assert_one_line_error(code, err, "unknown router(s) ['gpt-router']")


def test_malformed_quality(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.csv"
    pd.DataFrame(
        {
            "prompt_id": ["a", "a"],
            "text": ["q", "q"],
            "model": ["m1", "m2"],
            "quality": [0.5, "high"],
            "cost_usd": [1, 2],
        }
    ).to_csv(bad, index=False)
    code, _, err = run(["route", "eval", "--data", str(bad)], monkeypatch, capsys)
    _assert_one_line_error(code, err, "'high' is not a number")


def test_data_without_costs(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "nocost.jsonl"
    bad.write_text(
        "\n".join(
            json.dumps({"prompt_id": f"p{i}", "text": "q", "model": m, "quality": 1.0})
            for i in range(4)
            for m in "ab"
        )
    )
    code, _, err = run(["route", "eval", "--data", str(bad)], monkeypatch, capsys)
    assert code == 2 and "cost" in err


def test_hub_dataset_offline_fails_in_one_line(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run(["route", "eval", "--dataset", "routerbench"], monkeypatch, capsys)
    _assert_one_line_error(code, err, "Hugging Face")


def test_predict_needs_a_router_file(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    args = [
        "route",
        "predict",
        "--router",
        str(tmp_path / "none.router"),
        "--prompt",
        "hi",
        "--willingness-to-pay",
        "1",
    ]
    code, _, err = run(args, monkeypatch, capsys)
    _assert_one_line_error(code, err, "no such router file")


def test_predict_needs_one_trade_off(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(
        ["route", "predict", "--router", str(tmp_path / "r"), "--prompt", "hi"], monkeypatch, capsys
    )
    _assert_one_line_error(code, err, "--willingness-to-pay")


def test_eval_with_the_tfidf_encoder(long_jsonl: Path, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    out_json = tmp_path / "rows.json"
    args = ["route", "eval", "--data", str(long_jsonl), "--json", str(out_json), "--routers", "knn,zero"]
    code, _, err = run([*args, "--encoder", "tfidf"], monkeypatch, capsys)
    assert code == 0, err
    assert {r["router"] for r in json.loads(out_json.read_text())} == {"knn", "zero"}


def test_unknown_encoder(long_jsonl: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(["route", "eval", "--data", str(long_jsonl), "--encoder", "bert"], monkeypatch, capsys)
    _assert_one_line_error(code, err, "unknown encoder 'bert'")
