"""Built-in tasks read big files: a test session loads each one once (skips where ../shared is absent)."""

from __future__ import annotations

from rankroute.evaluate.tasks import Task, get_task
from shared_data import shared_path

_loaded: dict[str, Task] = {}


def task_named(name: str) -> Task:
    """The built-in task `name`, loaded once per session."""
    shared_path("benchmarks")
    if name not in _loaded:
        _loaded[name] = get_task(name)
    return _loaded[name]
