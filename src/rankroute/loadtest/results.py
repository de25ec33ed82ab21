"""Load-test results on disk and in the store.

A run is one JSON document (`loadtest.json` in the run folder: every level's settings, summary and
requests) and one row in the store's `runs` table (kind "loadtest") whose config holds the settings and
the summaries without per-request rows, so the report can show load tests from the store alone.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rankroute.data.store import OutcomeStore
from rankroute.loadtest.runner import LoadTestRun
from rankroute.loadtest.sweep import RateSweepResult, SweepResult

RUN_KIND = "loadtest"


def result_document(result: LoadTestRun | SweepResult | RateSweepResult) -> dict[str, Any]:
    """One JSON-safe document for a single run (one level), a concurrency sweep or a rate sweep."""
    knee_rate = None
    if isinstance(result, LoadTestRun):
        levels, knee, saturated, run_id, mode = [result], None, None, result.run_id, "run"
    elif isinstance(result, SweepResult):
        levels, knee, saturated, mode = result.levels, result.knee_concurrency, result.saturated, "sweep"
        run_id = "loadtest-sweep-" + uuid.uuid4().hex[:12]
    else:
        levels, knee, saturated, mode = result.levels, None, result.saturated, "rate-sweep"
        knee_rate = result.knee_rate
        run_id = "loadtest-rate-sweep-" + uuid.uuid4().hex[:12]
    first = levels[0].config if levels else None
    return {
        "run_id": run_id,
        "kind": RUN_KIND,
        "mode": mode,
        "created_at": datetime.now(UTC).isoformat(),
        "base_url": first.base_url if first else None,
        "model": first.model if first else None,
        "knee_concurrency": knee,
        "knee_rate": knee_rate,
        "saturated": saturated,
        "levels": [level.model_dump(mode="json") for level in levels],
    }


def write_results(
    result: LoadTestRun | SweepResult | RateSweepResult,
    out_dir: str | Path,
    *,
    store: OutcomeStore | None = None,
    plots: bool = True,
) -> Path:
    """Write `<out_dir>/loadtest.json` (+ PNG plots) and record the run in `store`; returns the JSON path."""
    document = result_document(result)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "loadtest.json"
    if plots:
        from rankroute.loadtest.plots import save_plots

        document["plots"] = [str(p) for p in save_plots(document, folder)]
    path.write_text(json.dumps(document, indent=1))
    if store is not None:
        store.record_run(document["run_id"], RUN_KIND, store_record(document, path))
    return path


def store_record(document: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """The document without per-request rows (they stay in the JSON file), for the runs table."""
    levels = [
        {key: value for key, value in level.items() if key != "results"} for level in document["levels"]
    ]
    record = {key: value for key, value in document.items() if key != "levels"}
    record["levels"] = levels
    if path is not None:
        record["result_file"] = str(path.resolve())
    return record


def read_loadtests(store: OutcomeStore) -> list[dict[str, Any]]:
    """Every load-test run recorded in the store, oldest first (documents without per-request rows)."""
    frame = store.read_runs(RUN_KIND)
    rows = zip(frame["run_id"], frame["created_at"], frame["config"], strict=True)
    runs = []
    for run_id, created_at, config in rows:
        record = json.loads(config) if config else {}
        record.setdefault("run_id", run_id)
        record.setdefault("created_at", str(created_at))
        runs.append(record)
    return runs
