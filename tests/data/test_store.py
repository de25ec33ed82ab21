"""The store's contract on both engines: an embedded DuckDB file and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from benchmarks.data_import import scratch_database

from rankroute.data import Battle, DataError, Outcome, OutcomeStore, Prompt
from rankroute.data.store import SCHEMA_VERSION


@pytest.fixture(params=["duckdb", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a fresh store lives: a DuckDB file, or a new database on the session's PostgreSQL server."""
    if request.param == "duckdb":
        yield str(tmp_path / "store.duckdb")
    else:
        with scratch_database(request.getfixturevalue("postgres_dsn")) as url:
            yield url


@pytest.fixture
def store(location: str) -> Iterator[OutcomeStore]:
    with OutcomeStore(location) as db:
        yield db


def _prompts(n: int) -> list[Prompt]:
    return [Prompt(prompt_id=f"p{i}", text=f"question {i}", dataset="toy") for i in range(n)]


def _outcomes(n: int, model: str = "m", quality: float = 1.0) -> list[Outcome]:
    return [Outcome(prompt_id=f"p{i}", model=model, quality=quality, cost_usd=0.001) for i in range(n)]


def test_round_trip_and_idempotent_rewrite(store: OutcomeStore) -> None:
    store.write_prompts(_prompts(5))
    first = store.write_outcomes(_outcomes(5))
    again = store.write_outcomes(_outcomes(5))
    assert (first.inserted, first.skipped) == (5, 0)
    assert (again.inserted, again.skipped) == (0, 5)
    frame = store.read_outcomes()
    assert len(frame) == 5 and set(frame["dataset"]) == {"toy"}
    assert frame["quality"].tolist() == [1.0] * 5


def test_conflicting_rewrite_rejects_whole_batch(store: OutcomeStore) -> None:
    store.write_prompts(_prompts(5))
    store.write_outcomes(_outcomes(2))
    batch = _outcomes(5, quality=0.0)  # rows 0-1 clash with what is stored, rows 2-4 are new
    with pytest.raises(DataError, match="already stored with different values"):
        store.write_outcomes(batch)
    assert store.counts()["outcomes"] == 2, "a rejected batch must not be half written"


def test_transaction_rolls_back_prompts_and_outcomes_together(store: OutcomeStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.write_prompts(_prompts(3))
        store.write_outcomes(_outcomes(3))
        raise RuntimeError("crash mid-import")
    assert store.counts()["prompts"] == 0 and store.counts()["outcomes"] == 0


def test_outcome_for_unknown_prompt_is_refused(store: OutcomeStore) -> None:
    with pytest.raises(DataError, match="write the prompts before"):
        store.write_outcomes(_outcomes(1))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [("quality", 1.5, "outside"), ("cost_usd", -0.1, "negative"), ("quality", "high", "not a number")],
)
def test_bad_values_name_column_and_row(
    store: OutcomeStore, column: str, value: object, message: str
) -> None:
    store.write_prompts(_prompts(3))
    frame = pd.DataFrame([o.model_dump() for o in _outcomes(3)]).astype({column: object})
    frame.loc[2, column] = value
    with pytest.raises(DataError, match=message) as info:
        store.write_outcomes(frame, source="bad.csv")
    assert info.value.column == column and info.value.row == 3 and "bad.csv" in str(info.value)
    assert store.counts()["outcomes"] == 0


def test_battles_append_with_increasing_ids(store: OutcomeStore) -> None:
    first = [
        Battle(model_a="a", model_b="b", winner="model_a"),
        Battle(model_a="b", model_b="c", winner="tie"),
    ]
    assert store.write_battles(first) == 2
    assert store.write_battles([Battle(model_a="a", model_b="c", winner="model_b", count=3, judge="j")]) == 1
    battles = store.read_battles()
    assert battles["battle_id"].tolist() == [1, 2, 3]
    assert battles["winner"].tolist() == ["model_a", "tie", "model_b"]
    assert battles["count"].tolist() == [1, 1, 3]
    assert store.read_battles(judge="j")["model_b"].tolist() == ["c"]


def test_schema_version_recorded_and_newer_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.duckdb"
    OutcomeStore(path).close()
    con = duckdb.connect(str(path))
    assert con.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]
    con.execute("UPDATE meta SET value = '999'")
    con.close()
    with pytest.raises(DataError, match="newer than this rankroute"):
        OutcomeStore(path)


def test_store_survives_reopen(location: str) -> None:
    with OutcomeStore(location) as db:
        db.write_prompts(_prompts(2))
        db.write_outcomes(_outcomes(2))
    with OutcomeStore(location, read_only=True) as db:
        assert db.counts()["outcomes"] == 2
        with pytest.raises(DataError, match="open read-only"):
            db.write_prompts(_prompts(3))
        assert db.counts()["prompts"] == 2


def test_a_postgres_url_without_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "psycopg", None)  # as if the [postgres] extra were absent
    with pytest.raises(DataError, match=r"needs psycopg.*rankroute\[postgres\]"):
        OutcomeStore("postgresql://me@127.0.0.1:5432/rankroute")
