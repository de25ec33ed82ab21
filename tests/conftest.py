"""Shared fixtures: where the real shared data lives, and a fresh store per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from postgres_server import running_postgres
from rankroute.data import OutcomeStore
from shared_data import SHARED_DATA, shared_path

__all__ = ["SHARED_DATA", "shared_path"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[OutcomeStore]:
    with OutcomeStore(tmp_path / "store.duckdb") as db:
        yield db


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """One real PostgreSQL server for the whole session (skips where none can be started)."""
    with running_postgres() as url:
        yield url
