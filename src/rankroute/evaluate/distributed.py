"""`executor: ray`: shard the planned prompts over a Ray cluster; the driver alone writes the store.

Workers build their own backends (a local model loads once per worker) and return outcomes per shard;
the driver stores each shard as it arrives, so resume and kill-safety are the same as the local runner's.
Ray is the optional `[ray]` extra; `ray.init()` joins `$RAY_ADDRESS` when set, else starts a local one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rankroute.backends import make_backend
from rankroute.data.errors import DataError
from rankroute.data.records import Outcome
from rankroute.data.store import OutcomeStore
from rankroute.evaluate.config import EvalConfig
from rankroute.evaluate.runner import EvalIssue, EvalReport, Runner, WorkItem

SHARD_SIZE = 16


class _CollectingRunner(Runner):
    """A runner inside a Ray worker: answers and scores, keeps outcomes for the driver to store."""

    def __init__(self, config: EvalConfig, run_id: str) -> None:
        super().__init__(config, OutcomeStore(":memory:"), run_id=run_id)
        self.collected: list[Outcome] = []

    def _record(self, outcome: Outcome) -> None:
        self.collected.append(outcome)


def evaluate_shard(
    config_json: dict[str, Any], run_id: str, items: list[WorkItem]
) -> tuple[list[Outcome], list[EvalIssue]]:
    """Evaluate one shard (all items of one model) and return its outcomes and problems."""
    config = EvalConfig.model_validate(config_json)
    runner = _CollectingRunner(config, run_id)
    backend = next(m for m in config.models if m.name == items[0].model)

    async def go() -> None:
        judge = None
        if config.judge is not None and any(i.task.kind == "judge" for i in items):
            judge = make_backend(config.judge)
        try:
            await runner.run_model(backend, items, judge)
        finally:
            if judge is not None:
                await judge.aclose()

    try:
        asyncio.run(go())
    finally:
        runner.close()
        runner.store.close()
    return runner.collected, runner.report.issues


class RayRunner(Runner):
    """Runner whose work items run as Ray tasks, SHARD_SIZE prompts of one model per task."""

    async def run(self) -> EvalReport:
        try:
            import ray
        except ImportError as exc:
            raise DataError(
                "executor 'ray' needs Ray installed",
                hint="pip install 'rankroute[ray]', or use --executor local",
            ) from exc
        import time

        started = time.perf_counter()
        if not ray.is_initialized():
            ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
        work = self.plan()
        remote = ray.remote(evaluate_shard)
        config_json = self.config.model_dump(mode="json")
        pending: dict[Any, list[WorkItem]] = {}
        for items in work.values():
            for start in range(0, len(items), SHARD_SIZE):
                shard = items[start : start + SHARD_SIZE]
                pending[remote.remote(config_json, self.report.run_id, shard)] = shard
        try:
            while pending:
                ready, _ = await asyncio.to_thread(ray.wait, list(pending), num_returns=1)
                for ref in ready:
                    shard = pending.pop(ref)
                    outcomes, issues = ray.get(ref)
                    self.report.issues.extend(issues)
                    self._buffer.extend(outcomes)
                    self.flush()
                    if self.on_done is not None:
                        answered = {o.prompt_id for o in outcomes}
                        for item in shard:
                            by_id = item.instance.prompt.prompt_id
                            match = next((o for o in outcomes if o.prompt_id == by_id), None)
                            self.on_done(item.model, match if by_id in answered else None)
        finally:
            self.flush()
            for ref in pending:
                ray.cancel(ref)
        self.report.elapsed_s = time.perf_counter() - started
        return self.report
