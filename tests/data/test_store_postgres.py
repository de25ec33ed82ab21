"""A PostgreSQL store holds real outcome data exactly as a DuckDB store does, and takes concurrent writers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from benchmarks.data_import import scratch_database

from rankroute.data import DataError, Outcome, OutcomeStore, Prompt
from rankroute.data.importers import import_path
from rankroute.data.matrix import OutcomeMatrix
from shared_data import shared_path

pytestmark = [pytest.mark.network, pytest.mark.slow]


@pytest.fixture
def postgres_url(postgres_dsn: str) -> Iterator[str]:
    with scratch_database(postgres_dsn) as url:
        yield url


def without_write_time(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame less created_at (each import stamps its own time), which must be set on every row."""
    if "created_at" not in frame:
        return frame
    assert frame["created_at"].notna().all() and frame["created_at"].dt.tz is not None
    return frame.drop(columns="created_at")


def test_routerbench_reads_back_identically_from_both_engines(postgres_url: str, tmp_path: Path) -> None:
    folder = shared_path("routing", "routerbench-subset")
    with OutcomeStore(tmp_path / "s.duckdb") as duck, OutcomeStore(postgres_url) as pg:
        duck_report, pg_report = import_path(duck, folder), import_path(pg, folder)
        assert (pg_report.prompts, pg_report.outcomes) == (duck_report.prompts, duck_report.outcomes)
        assert pg.counts() == duck.counts()
        for read in ("read_prompts", "read_outcomes"):
            expected = without_write_time(getattr(duck, read)())
            got = without_write_time(getattr(pg, read)())
            pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)
        assert pg.read_models() == duck.read_models()
        duck_matrix, pg_matrix = OutcomeMatrix.from_store(duck), OutcomeMatrix.from_store(pg)
        assert list(pg_matrix.models) == list(duck_matrix.models)
        assert list(pg_matrix.prompt_ids) == list(duck_matrix.prompt_ids)
        np.testing.assert_array_equal(pg_matrix.quality, duck_matrix.quality)
        np.testing.assert_allclose(pg_matrix.cost, duck_matrix.cost, rtol=1e-12)
        # a re-import is a no-op on PostgreSQL too, and an export reads back into DuckDB whole
        again = import_path(pg, folder)
        assert again.outcomes.inserted == 0 and again.outcomes.skipped == pg_report.outcomes.inserted
        exported = tmp_path / "export"
        pg.export_parquet(exported)
    with OutcomeStore(tmp_path / "round_trip.duckdb") as back:
        import_path(back, exported)
        assert back.counts()["outcomes"] == duck_report.outcomes.inserted


def test_writers_on_two_connections_at_once_all_land(postgres_url: str) -> None:
    """What DuckDB cannot do: several processes (here connections) writing one store concurrently."""
    with OutcomeStore(postgres_url) as setup:
        setup.write_prompts([Prompt(prompt_id=f"p{i}", text=f"q {i}", dataset="toy") for i in range(200)])
    errors: list[BaseException] = []

    def write(model: str) -> None:
        try:
            with OutcomeStore(postgres_url) as db:
                for start in range(0, 200, 20):
                    batch = [
                        Outcome(prompt_id=f"p{i}", model=model, quality=1.0, cost_usd=0.001)
                        for i in range(start, start + 20)
                    ]
                    db.write_outcomes(batch)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"model-{k}",)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with OutcomeStore(postgres_url, read_only=True) as db:
        assert db.counts()["outcomes"] == 600
        assert db.read_outcomes().groupby("model").size().to_dict() == {f"model-{k}": 200 for k in range(3)}


def test_a_rejected_batch_leaves_the_postgres_store_as_it_was(postgres_url: str) -> None:
    with OutcomeStore(postgres_url) as db:
        db.write_prompts([Prompt(prompt_id="p0", text="q", dataset="toy")])
        db.write_outcomes([Outcome(prompt_id="p0", model="m", quality=1.0)])
        with pytest.raises(DataError, match="already stored with different values"):
            clashing = Outcome(prompt_id="p0", model="m", quality=0.0)
            db.write_outcomes([clashing, Outcome(prompt_id="p0", model="n", quality=1.0)])
        assert db.counts()["outcomes"] == 1
        # the connection is usable after the rollback
        assert db.write_outcomes([Outcome(prompt_id="p0", model="n", quality=1.0)]).inserted == 1


def test_unreachable_server_and_missing_store_are_clear_errors(postgres_url: str) -> None:
    with pytest.raises(DataError, match=r"cannot open store postgresql://nobody:\*\*\*@127\.0\.0\.1:1/"):
        OutcomeStore("postgresql://nobody:secret@127.0.0.1:1/rankroute")
    with pytest.raises(DataError, match="no store at"):
        OutcomeStore(postgres_url, read_only=True)  # a database that holds no rankroute tables yet


def test_a_concurrent_write_of_the_same_outcome_is_a_clear_error(postgres_url: str) -> None:
    """The second writer waits on the first's uncommitted row, then is refused by name; nothing is lost."""
    outcome = Outcome(prompt_id="p0", model="m", quality=1.0)
    with OutcomeStore(postgres_url) as first, OutcomeStore(postgres_url) as second:
        first.write_prompts([Prompt(prompt_id="p0", text="q", dataset="toy")])
        errors: list[BaseException] = []

        def write_second() -> None:
            try:
                second.write_outcomes([outcome])
            except BaseException as exc:
                errors.append(exc)

        with first.transaction():
            first.write_outcomes([outcome])
            racer = threading.Thread(target=write_second)
            racer.start()
            racer.join(timeout=1.0)
            assert racer.is_alive(), "the second writer should wait for the first's transaction"
        racer.join(timeout=30)
        assert len(errors) == 1 and isinstance(errors[0], DataError)
        assert "another writer stored the same record" in str(errors[0])
        assert second.write_outcomes([outcome]).skipped == 1  # written again: identical, so skipped
        assert first.counts()["outcomes"] == 1


def test_cli_imports_into_and_ranks_from_a_postgres_store(postgres_url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rankroute.cli import app

    runner = CliRunner()
    folder = str(shared_path("routing", "routerbench-subset"))
    imported = runner.invoke(app, ["data", "import", folder, "--store", postgres_url])
    assert imported.exit_code == 0, imported.output
    info = runner.invoke(app, ["data", "info", "--store", postgres_url])
    assert info.exit_code == 0 and "34,804" in info.output, info.output
    out = tmp_path / "board.json"
    board = runner.invoke(
        app, ["rank", "leaderboard", "--store", postgres_url, "--bootstrap", "50", "--json", str(out)]
    )
    assert board.exit_code == 0, board.output
    assert json.loads(out.read_text())["overall"][0]["model"] == "gpt-4-1106-preview"


def test_rankroute_store_may_name_a_postgres_url(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANKROUTE_STORE", postgres_url)
    with OutcomeStore() as db:
        db.write_prompts([Prompt(prompt_id="p0", text="q", dataset="toy")])
        assert db.path is None and db.location == postgres_url
    with OutcomeStore(postgres_url, read_only=True) as db:
        assert db.counts()["prompts"] == 1
