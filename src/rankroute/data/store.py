"""The outcome store: prompts, model cards, outcomes, battles and runs, in one database.

An embedded DuckDB file by default; a PostgreSQL database (`postgresql://...`) when several machines or
people share one store. Every write is one transaction: a batch lands whole or not at all, so a crash
never leaves half of it, and re-writing an identical record is a no-op (which is what makes evaluation
runs resumable). Both engines run the same SQL; `_DuckDB` and `_Postgres` differ only in how a batch is
staged, how results become DataFrames, and how tables are exported.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd

from rankroute.data.errors import DataError
from rankroute.data.frames import (
    BATTLE_COLUMNS,
    OUTCOME_COLUMNS,
    OUTCOME_KEY,
    OUTCOME_VALUE_COLUMNS,
    PROMPT_COLUMNS,
    battles_frame,
    outcomes_frame,
    prompts_frame,
)
from rankroute.data.records import Battle, ModelCard, Outcome, Prompt, utc_now

if TYPE_CHECKING:
    import psycopg

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS prompts (
    prompt_id VARCHAR PRIMARY KEY, text VARCHAR NOT NULL, turns VARCHAR[], dataset VARCHAR NOT NULL,
    category VARCHAR, split VARCHAR, reference VARCHAR, metadata VARCHAR
);
CREATE TABLE IF NOT EXISTS models (
    name VARCHAR PRIMARY KEY, provider VARCHAR, parameters_b DOUBLE, hosted BOOLEAN,
    input_price_per_m DOUBLE, output_price_per_m DOUBLE, price_date DATE, usd_per_hour DOUBLE,
    context_length INTEGER, reasoning BOOLEAN
);
CREATE TABLE IF NOT EXISTS outcomes (
    prompt_id VARCHAR NOT NULL, model VARCHAR NOT NULL, quality DOUBLE NOT NULL, raw_score DOUBLE,
    metric VARCHAR NOT NULL, cost_usd DOUBLE, input_tokens BIGINT, output_tokens BIGINT,
    latency_ms DOUBLE, ttft_ms DOUBLE, response VARCHAR, run_id VARCHAR NOT NULL,
    config_key VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL, extra VARCHAR,
    PRIMARY KEY (prompt_id, model, metric, config_key)
);
CREATE SEQUENCE IF NOT EXISTS battle_ids START 1;
CREATE TABLE IF NOT EXISTS battles (
    battle_id BIGINT PRIMARY KEY DEFAULT nextval('battle_ids'), model_a VARCHAR NOT NULL,
    model_b VARCHAR NOT NULL, winner VARCHAR NOT NULL, prompt_id VARCHAR, judge VARCHAR,
    count BIGINT NOT NULL, created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL, config VARCHAR
);
"""

MODEL_COLUMNS = list(ModelCard.model_fields)


POSTGRES_URL = re.compile(r"^postgres(ql)?://", re.IGNORECASE)
# PostgreSQL spellings of the two DuckDB types the schema uses that PostgreSQL names differently
_POSTGRES_TYPES = ((re.compile(r"\bDOUBLE\b"), "DOUBLE PRECISION"), (re.compile(r"VARCHAR\[\]"), "TEXT[]"))
_SCHEMA_LOCK = 727_020_001  # pg_advisory_xact_lock key: stores opened at once create the schema in turn


def is_postgres_url(location: str | os.PathLike[str]) -> bool:
    return bool(POSTGRES_URL.match(str(location)))


def redact(url: str) -> str:
    """The URL without its password, for messages and titles."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)


class _DuckDB:
    """An embedded DuckDB file (or ':memory:')."""

    def __init__(self, path: Path, read_only: bool) -> None:
        if str(path) != ":memory:":
            if read_only and not path.exists():
                raise DataError(f"no store at {path}", hint="import data first: rankroute data import")
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            raise DataError(
                f"cannot open store {path}: {exc}",
                hint="another process may hold it open for writing; stop it or use another --store path",
            ) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows, fully consumed (an unfinished result would block ROLLBACK); INSERT gives its count."""
        return [tuple(row) for row in self.con.execute(sql, list(params)).fetchall()]

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        return self.con.execute(sql, list(params)).df()

    @contextmanager
    def staged(self, name: str, frame: pd.DataFrame, table: str) -> Iterator[None]:
        """`frame` readable as table `name` inside the current transaction."""
        self.con.register(name, frame)
        try:
            yield
        finally:
            self.con.unregister(name)

    def export(self, table: str, target: Path) -> None:
        self.con.execute(f"COPY (SELECT * FROM {table}) TO '{target.as_posix()}' (FORMAT PARQUET)")

    def create_schema(self) -> None:
        self.con.execute(_SCHEMA)

    def close(self) -> None:
        self.con.close()


# PostgreSQL type OIDs -> how DuckDB's .df() would type that column, so readers see one shape
_PG_INTEGER = {20, 21, 23}
_PG_FLOAT = {700, 701, 1700}
_PG_TIMESTAMPTZ, _PG_DATE, _PG_BOOL, _PG_TEXT = 1184, 1082, 16, {25, 1043}


class _Postgres:
    """A PostgreSQL database: the store many machines or people share (needs the [postgres] extra)."""

    def __init__(self, url: str, read_only: bool) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise DataError(
                "a postgresql:// store needs psycopg", hint="pip install 'rankroute[postgres]'"
            ) from exc
        try:
            self.con: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(url, autocommit=True)
        except psycopg.OperationalError as exc:
            raise DataError(
                f"cannot open store {redact(url)}: {str(exc).strip().splitlines()[0]}",
                hint="check the server is up and the URL's user, host, port and database",
            ) from exc
        if read_only:
            self.con.execute("SET default_transaction_read_only = on")
            if not self.execute("SELECT to_regclass('meta') IS NOT NULL")[0][0]:
                raise DataError(f"no store at {redact(url)}", hint="import data first: rankroute data import")

    def _cursor(self, sql: str, params: Sequence[Any]) -> psycopg.Cursor[tuple[Any, ...]]:
        """Run `sql` with DuckDB's `?` placeholders."""
        import psycopg

        translated = sql.replace("%", "%%").replace("?", "%s") if params else sql
        try:
            return self.con.execute(translated, list(params) or None)
        except psycopg.errors.UniqueViolation as exc:  # a concurrent writer committed the same key first
            detail = exc.diag.message_detail or str(exc)
            raise DataError(
                f"another writer stored the same record while this batch was being written ({detail})",
                hint="write the batch again: identical records are then skipped, different ones refused",
            ) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows; a statement without rows gives [(rowcount,)], as DuckDB gives INSERT's count."""
        cursor = self._cursor(sql, params)
        if cursor.description is None:
            return [(cursor.rowcount,)] if cursor.rowcount >= 0 else []
        return [tuple(row) for row in cursor.fetchall()]

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        cursor = self._cursor(sql, params)
        assert cursor.description is not None
        rows = cursor.fetchall()
        columns: dict[str, Any] = {}
        for i, column in enumerate(cursor.description):
            values = [row[i] for row in rows]
            columns[column.name] = _duckdb_like(values, column.type_code)
        return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))

    @contextmanager
    def staged(self, name: str, frame: pd.DataFrame, table: str) -> Iterator[None]:
        """`frame` copied into a temporary table `name` typed as `table`'s columns, dropped afterwards."""
        columns = ", ".join(frame.columns)
        self.con.execute(f"CREATE TEMP TABLE {name} AS SELECT {columns} FROM {table} WITH NO DATA")
        try:
            cells = [frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in frame.columns]
            with self.con.cursor().copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
                for row in zip(*cells, strict=True):
                    copy.write_row(row)
            yield
        finally:
            from psycopg.pq import TransactionStatus

            # after an error the transaction is aborted: its ROLLBACK removes the table instead
            if self.con.info.transaction_status != TransactionStatus.INERROR:
                self.con.execute(f"DROP TABLE IF EXISTS {name}")

    def export(self, table: str, target: Path) -> None:
        self.frame(f"SELECT * FROM {table}").to_parquet(target, index=False)

    def create_schema(self) -> None:
        ddl = _SCHEMA
        for pattern, replacement in _POSTGRES_TYPES:
            ddl = pattern.sub(replacement, ddl)
        with self.con.transaction():
            self.con.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK])
            self.con.execute(ddl)

    def close(self) -> None:
        self.con.close()


def _duckdb_like(values: list[Any], type_code: int) -> Any:
    """One result column typed as DuckDB's .df() types it (nullable ints, UTC timestamps, str)."""
    if type_code in _PG_INTEGER:
        return pd.array(values, dtype="Int64") if None in values else np.array(values, dtype=np.int64)
    if type_code in _PG_FLOAT:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    if type_code == _PG_TIMESTAMPTZ:
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype("datetime64[us, UTC]")
    if type_code == _PG_DATE:
        return pd.to_datetime(pd.Series(values, dtype=object)).astype("datetime64[us]")
    if type_code == _PG_BOOL:
        return pd.array(values, dtype="boolean") if None in values else np.array(values, dtype=bool)
    if type_code in _PG_TEXT and any(v is not None for v in values):  # DuckDB: all-NULL text is object
        return pd.Series(values, dtype="str")
    return pd.Series(values, dtype=object)


def default_store_path() -> Path | str:
    """`$RANKROUTE_STORE` (a path, or a postgresql:// URL kept as written), else
    `$RANKROUTE_HOME/rankroute.duckdb`, else `~/.rankroute/rankroute.duckdb`."""
    explicit = os.environ.get("RANKROUTE_STORE")
    if explicit:
        return explicit if is_postgres_url(explicit) else Path(explicit)
    home = Path(os.environ.get("RANKROUTE_HOME", Path.home() / ".rankroute"))
    return home / "rankroute.duckdb"


@dataclass(frozen=True)
class WriteReport:
    """What a write did: rows inserted, and rows skipped because an identical record was already there."""

    inserted: int
    skipped: int


class OutcomeStore:
    """The outcome store. Use as a context manager, or call close().

    `location`: a DuckDB file path (default: `default_store_path()`), ':memory:', or a PostgreSQL URL
    (`postgresql://user@host:5432/db`). A DuckDB file may be open for writing by one process at a time
    (DuckDB's rule); PostgreSQL takes writers from many machines. Methods are thread-safe in a process.
    """

    def __init__(self, location: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> None:
        self._engine: _DuckDB | _Postgres
        if location is None:
            location = default_store_path()
        if is_postgres_url(location):
            self.path: Path | None = None
            self.location = redact(str(location))
            self._engine = _Postgres(str(location), read_only)
        else:
            self.path = Path(location)
            self.location = str(self.path)
            self._engine = _DuckDB(self.path, read_only)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._depth = 0
        if not read_only:
            self._engine.create_schema()
        self._check_schema(read_only)

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        self._engine.close()

    def __enter__(self) -> OutcomeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_schema(self, read_only: bool) -> None:
        rows = self._engine.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        row = rows[0] if rows else None
        if row is None:
            if read_only:
                raise DataError(f"store {self.location} has no schema version")
            self._engine.execute(
                "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", [str(SCHEMA_VERSION)]
            )
            return
        found = int(row[0])
        if found > SCHEMA_VERSION:
            raise DataError(
                f"store {self.location} has schema version {found}, newer than this rankroute "
                f"({SCHEMA_VERSION})",
                hint="upgrade rankroute",
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; nested use joins the outer transaction."""
        if self.read_only:
            raise DataError(
                f"store {self.location} is open read-only", hint="open it without read_only to write"
            )
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._engine.execute("BEGIN TRANSACTION")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._engine.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._engine.execute("COMMIT")

    # -- writes ----------------------------------------------------------------------------------
    def _first(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self._engine.execute(sql, params)
        return rows[0] if rows else None

    def write_prompts(
        self, prompts: Iterable[Prompt] | pd.DataFrame, source: str | None = None
    ) -> WriteReport:
        frame = prompts_frame(prompts, source)
        with self.transaction(), self._engine.staged("incoming_prompts", frame, "prompts"):
            clash = self._first(
                "SELECT i.prompt_id FROM incoming_prompts i JOIN prompts p USING (prompt_id) "
                "WHERE p.text IS DISTINCT FROM i.text LIMIT 1",
            )
            if clash:
                raise DataError(
                    f"prompt {clash[0]!r} is already stored with different text",
                    source=source,
                    column="prompt_id",
                    hint="use a new prompt_id for a changed prompt",
                )
            columns = ", ".join(PROMPT_COLUMNS)
            inserted = self._first(
                f"INSERT INTO prompts ({columns}) SELECT {columns} FROM incoming_prompts i "
                "WHERE NOT EXISTS (SELECT 1 FROM prompts p WHERE p.prompt_id = i.prompt_id)",
            )
        n = int(inserted[0]) if inserted else 0
        return WriteReport(inserted=n, skipped=len(frame) - n)

    def write_models(self, cards: Iterable[ModelCard]) -> int:
        """Insert or replace model cards (a card is metadata: the newest one wins)."""
        rows = [card.model_dump() for card in cards]
        if not rows:
            return 0
        frame = pd.DataFrame(rows, columns=MODEL_COLUMNS)
        columns = ", ".join(MODEL_COLUMNS)
        with self.transaction(), self._engine.staged("incoming_models", frame, "models"):
            self._engine.execute("DELETE FROM models WHERE name IN (SELECT name FROM incoming_models)")
            self._engine.execute(f"INSERT INTO models ({columns}) SELECT {columns} FROM incoming_models")
        return len(rows)

    def write_outcomes(
        self, outcomes: Iterable[Outcome] | pd.DataFrame, source: str | None = None
    ) -> WriteReport:
        """Validate and insert outcomes in one transaction.

        Identical re-writes are skipped; a stored outcome with the same key but different values, or an
        outcome for a prompt the store does not know, rejects the whole batch.
        """
        frame = outcomes_frame(outcomes, source)
        key = " AND ".join(f"o.{c} = i.{c}" for c in OUTCOME_KEY)
        differs = " OR ".join(f"o.{c} IS DISTINCT FROM i.{c}" for c in OUTCOME_VALUE_COLUMNS)
        columns = ", ".join(OUTCOME_COLUMNS)
        with self.transaction(), self._engine.staged("incoming_outcomes", frame, "outcomes"):
            orphan = self._first(
                "SELECT i.prompt_id FROM incoming_outcomes i "
                "WHERE NOT EXISTS (SELECT 1 FROM prompts p WHERE p.prompt_id = i.prompt_id) LIMIT 1",
            )
            if orphan:
                raise DataError(
                    f"outcome refers to prompt {orphan[0]!r}, which the store does not hold",
                    source=source,
                    column="prompt_id",
                    hint="write the prompts before their outcomes",
                )
            clash = self._first(
                f"SELECT i.prompt_id, i.model, o.quality, i.quality FROM incoming_outcomes i "
                f"JOIN outcomes o ON {key} WHERE {differs} LIMIT 1",
            )
            if clash:
                raise DataError(
                    f"outcome for prompt {clash[0]!r} x model {clash[1]!r} is already stored with "
                    f"different values (stored quality {clash[2]}, new {clash[3]})",
                    source=source,
                    hint="outcomes are immutable; record a re-run under another config_key",
                )
            inserted = self._first(
                f"INSERT INTO outcomes ({columns}) SELECT {columns} FROM incoming_outcomes i "
                f"WHERE NOT EXISTS (SELECT 1 FROM outcomes o WHERE {key})",
            )
        n = int(inserted[0]) if inserted else 0
        return WriteReport(inserted=n, skipped=len(frame) - n)

    def write_battles(self, battles: Iterable[Battle] | pd.DataFrame, source: str | None = None) -> int:
        frame = battles_frame(battles, source)
        columns = ", ".join(BATTLE_COLUMNS)
        with self.transaction(), self._engine.staged("incoming_battles", frame, "battles"):
            self._engine.execute(f"INSERT INTO battles ({columns}) SELECT {columns} FROM incoming_battles")
        return len(frame)

    def record_run(self, run_id: str, kind: str, config: dict[str, Any] | None = None) -> None:
        with self.transaction():
            self._engine.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [run_id, kind, utc_now(), json.dumps(config or {}, sort_keys=True, default=str)],
            )

    # -- reads -----------------------------------------------------------------------------------
    def _query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self._lock:
            return self._engine.frame(sql, params)

    def read_prompts(
        self, *, datasets: Sequence[str] | None = None, split: str | None = None
    ) -> pd.DataFrame:
        where: list[str] = []
        params: list[Any] = []
        if datasets:
            where.append(f"dataset IN ({', '.join('?' * len(datasets))})")
            params.extend(datasets)
        if split is not None:
            where.append("split = ?")
            params.append(split)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self._query(f"SELECT * FROM prompts {clause} ORDER BY prompt_id", params)

    def read_outcomes(
        self,
        *,
        datasets: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        metric: str | None = None,
        run_id: str | None = None,
        with_response: bool = False,
    ) -> pd.DataFrame:
        """Outcomes joined with their prompt's dataset and category."""
        where: list[str] = []
        params: list[Any] = []
        if datasets:
            where.append(f"p.dataset IN ({', '.join('?' * len(datasets))})")
            params.extend(datasets)
        if models:
            where.append(f"o.model IN ({', '.join('?' * len(models))})")
            params.extend(models)
        if metric is not None:
            where.append("o.metric = ?")
            params.append(metric)
        if run_id is not None:
            where.append("o.run_id = ?")
            params.append(run_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        columns = [c for c in OUTCOME_COLUMNS if with_response or c != "response"]
        select = ", ".join(f"o.{c}" for c in columns)
        return self._query(
            f"SELECT {select}, p.dataset, p.category FROM outcomes o JOIN prompts p USING (prompt_id) "
            f"{clause} ORDER BY o.prompt_id, o.model",
            params,
        )

    def read_models(self) -> list[ModelCard]:
        frame = self._query("SELECT * FROM models ORDER BY name")
        return [
            ModelCard(**{str(k): (None if pd.isna(v) else v) for k, v in row.items()})
            for row in frame.to_dict(orient="records")
        ]

    def read_battles(self, *, judge: str | None = None) -> pd.DataFrame:
        if judge is None:
            return self._query("SELECT * FROM battles ORDER BY battle_id")
        return self._query("SELECT * FROM battles WHERE judge = ? ORDER BY battle_id", [judge])

    def read_runs(self, kind: str) -> pd.DataFrame:
        """Runs of one kind (run_id, kind, created_at, config as JSON text), oldest first."""
        return self._query("SELECT * FROM runs WHERE kind = ? ORDER BY created_at", [kind])

    def outcome_keys(
        self, *, model: str | None = None, config_key: str | None = None
    ) -> set[tuple[str, ...]]:
        """Keys (prompt_id, model, metric, config_key) already stored: what a resumed run skips."""
        where: list[str] = []
        params: list[Any] = []
        if model is not None:
            where.append("model = ?")
            params.append(model)
        if config_key is not None:
            where.append("config_key = ?")
            params.append(config_key)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            rows = self._engine.execute(f"SELECT {', '.join(OUTCOME_KEY)} FROM outcomes {clause}", params)
        return {tuple(r) for r in rows}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                table: int(self._engine.execute(f"SELECT count(*) FROM {table}")[0][0])
                for table in ("prompts", "models", "outcomes", "battles", "runs")
            }

    def datasets(self) -> list[str]:
        frame = self._query("SELECT DISTINCT dataset FROM prompts ORDER BY dataset")
        return [str(d) for d in frame["dataset"]]

    # -- Parquet ---------------------------------------------------------------------------------
    def export_parquet(self, directory: str | os.PathLike[str]) -> dict[str, Path]:
        """Write prompts/outcomes/models/battles as Parquet files in rankroute's long format."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        with self._lock:
            for table in ("prompts", "outcomes", "models", "battles"):
                target = out / f"{table}.parquet"
                self._engine.export(table, target)
                written[table] = target
        return written
