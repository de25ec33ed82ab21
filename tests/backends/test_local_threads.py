"""llama.cpp's thread count follows the cores idle at load time, sampled now, not the lagging load average."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from rankroute.backends import local


def _samples(*pairs: tuple[int, int]) -> Iterator[tuple[int, int]]:
    yield from pairs


@pytest.mark.parametrize(
    ("idle_share", "expected_share"),
    [(1.0, 1.0), (0.0, 0.0), (0.5, 0.5)],
)
def test_threads_follow_the_idle_share_of_the_cores(
    monkeypatch: pytest.MonkeyPatch, idle_share: float, expected_share: float
) -> None:
    cores = os.cpu_count() or 1
    samples = _samples((1_000, 500), (1_000 + 1_000, 500 + int(1_000 * idle_share)))
    monkeypatch.setattr(local, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(local.os, "getloadavg", lambda: (cores * 10.0, 0.0, 0.0))  # must not be read
    threads = local.default_threads(sample_s=0.0)
    assert threads == max(1, min(cores, round(cores * expected_share)))


def test_the_load_average_decides_where_proc_stat_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> tuple[int, int]:
        raise OSError("no /proc/stat")

    cores = os.cpu_count() or 1
    monkeypatch.setattr(local, "_cpu_times", missing)
    monkeypatch.setattr(local.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert local.default_threads(sample_s=0.0) == cores
    monkeypatch.setattr(local.os, "getloadavg", lambda: (cores * 4.0, 0.0, 0.0))
    assert local.default_threads(sample_s=0.0) == 1


def test_real_sample_is_within_the_cores() -> None:
    assert 1 <= local.default_threads(sample_s=0.05) <= (os.cpu_count() or 1)
