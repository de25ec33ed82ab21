"""AIQ - Zero over repeated seeded splits: the corrected resampled t-interval, and `route eval --repeats`."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from routing_data import routerbench_matrix
from scipy import stats

from rankroute.cli import main
from rankroute.data.errors import DataError
from rankroute.route.evaluate import baseline_routers, evaluate_routers, summarise_splits


def _rows(gain: float, aiq: float = 0.8) -> list[dict[str, object]]:
    return [
        {"dataset": "d", "router": "zero", "aiq": aiq - gain, "aiq_minus_zero": 0.0},
        {"dataset": "d", "router": "r", "aiq": aiq, "aiq_minus_zero": gain},
    ]


def test_corrected_interval_by_hand() -> None:
    """Gains 0.01, 0.03, 0.02 over 3 splits with 30 % held out: mean 0.02, s = 0.01,
    corrected variance (1/3 + 0.3/0.7) s^2, half-width t(0.975, 2) x its root."""
    summary = summarise_splits([_rows(0.01), _rows(0.03), _rows(0.02)], test_size=0.3)
    row = next(r for r in summary if r["router"] == "r")
    half = stats.t.ppf(0.975, 2) * math.sqrt((1 / 3 + 0.3 / 0.7) * 0.01**2)
    assert row["n_splits"] == 3
    assert row["mean_aiq_minus_zero"] == pytest.approx(0.02)
    assert row["aiq_minus_zero_ci_low"] == pytest.approx(0.02 - half)
    assert row["aiq_minus_zero_ci_high"] == pytest.approx(0.02 + half)
    assert row["splits_ahead_of_zero"] == 3
    assert row["aiq_minus_zero_per_split"] == pytest.approx([0.01, 0.03, 0.02])
    # the correction widens the naive t-interval over overlapping splits
    naive = stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)
    assert half > naive


def test_one_split_has_no_interval_and_bad_test_size_is_refused() -> None:
    row = next(r for r in summarise_splits([_rows(0.01)], test_size=0.3) if r["router"] == "r")
    assert row["aiq_minus_zero_ci_low"] is None and row["aiq_minus_zero_ci_high"] is None
    with pytest.raises(DataError, match="test_size"):
        summarise_splits([_rows(0.01)], test_size=1.0)


def test_summary_of_real_splits_matches_each_split() -> None:
    """On the real RouterBench subset, each split's gain is that split's own evaluation, and the mean and
    count follow from them (the oracle is ahead of Zero on every split and every dataset)."""
    matrix = routerbench_matrix()
    split_rows = []
    for seed in (0, 1, 2):
        routers = baseline_routers(matrix.models, seed=seed)
        split_rows.append(evaluate_routers(matrix, routers, seed=seed, n_bootstrap=0).rows)
    summary = {(r["dataset"], r["router"]): r for r in summarise_splits(split_rows, test_size=0.3)}
    for dataset in ("arc-challenge", "mbpp", "winogrande", "all"):
        gains = [
            next(r["aiq_minus_zero"] for r in rows if (r["dataset"], r["router"]) == (dataset, "oracle"))
            for rows in split_rows
        ]
        oracle = summary[(dataset, "oracle")]
        assert oracle["aiq_minus_zero_per_split"] == pytest.approx(gains)
        assert oracle["mean_aiq_minus_zero"] == pytest.approx(np.mean(gains))
        assert oracle["splits_ahead_of_zero"] == 3
        assert oracle["aiq_minus_zero_ci_low"] > 0
        assert summary[(dataset, "zero")]["mean_aiq_minus_zero"] == 0.0


def test_cli_repeats_adds_split_figures_to_each_row(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from shared_data import shared_path

    data = shared_path("routing", "routerbench-subset")
    out_json = tmp_path / "rows.json"
    args = ["route", "eval", "--data", str(data), "--routers", "oracle,random,zero", "--bootstrap", "10"]
    monkeypatch.setattr(sys, "argv", ["rankroute", *args, "--repeats", "2", "--json", str(out_json)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    assert "over 2 seeded splits" in capsys.readouterr().out
    rows = json.loads(out_json.read_text())
    for row in rows:
        repeated = row["repeated_splits"]
        assert repeated["n_splits"] == 2
        # the first split is the contract's own seed-0 split
        assert repeated["aiq_minus_zero_per_split"][0] == pytest.approx(row["aiq_minus_zero"])
