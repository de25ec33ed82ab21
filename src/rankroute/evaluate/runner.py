"""The evaluation runner: models x tasks, concurrently, every outcome stored as soon as it is scored.

Resumable by construction: each outcome's config_key hashes (task, backend identity, decoding), the runner
skips every (prompt, model, config_key) the store already holds. Writes are batched on a worker thread: one
transaction per `batch_size` outcomes or per `flush_interval_s`, whichever comes first (a timer flushes even
while no answer arrives). So a run killed at any moment loses at most what was scored in the last
`flush_interval_s` (1 s by default) plus the one write in flight, which lands whole or not at all, and it
never records a duplicate.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console

from rankroute.backends import (
    Backend,
    BackendConfig,
    BackendError,
    BackendUnsupported,
    DecodingParams,
    Generation,
    make_backend,
)
from rankroute.data.errors import DataError
from rankroute.data.records import ModelCard, Outcome
from rankroute.data.store import OutcomeStore
from rankroute.evaluate.config import EvalConfig, TaskSpec, stable_hash

if TYPE_CHECKING:
    from rankroute.evaluate.tasks import Score, Task, TaskInstance

MAX_ISSUE_EXAMPLES = 5
T = TypeVar("T")


@dataclass(frozen=True)
class EvalIssue:
    """Something that could not be evaluated: a bad row, a failed call, an unparseable answer."""

    stage: str
    problem: str
    model: str | None = None
    task: str | None = None
    prompt_id: str | None = None

    def __str__(self) -> str:
        where = " ".join(
            p
            for p in (self.model or "", self.task or "", (self.prompt_id and f"[{self.prompt_id}]") or "")
            if p
        )
        return f"{self.stage} {where}: {self.problem}" if where else f"{self.stage}: {self.problem}"


@dataclass
class EvalReport:
    """What a run did. `ran_nothing` is what turns into a non-zero exit code."""

    run_id: str
    planned: int = 0
    already_stored: int = 0
    completed: int = 0
    issues: list[EvalIssue] = field(default_factory=list)
    elapsed_s: float = 0.0
    config_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    """(model, task) -> config_key, to read this config's outcomes back from the store."""

    @property
    def failed(self) -> int:
        return sum(1 for i in self.issues if i.prompt_id is not None)

    @property
    def ran_nothing(self) -> bool:
        return self.completed == 0 and self.already_stored == 0

    def issue_examples(self, n: int = MAX_ISSUE_EXAMPLES) -> list[str]:
        return [str(i) for i in self.issues[:n]]


@dataclass(frozen=True)
class WorkItem:
    """One prompt to put to one model under one config."""

    model: str
    task_name: str
    task: Task
    instance: TaskInstance
    config_key: str
    params: DecodingParams


ProgressHook = Callable[[str, Outcome | None], None]
"""Called once per finished work item with the model name and its outcome (None when it failed)."""


def backend_identity(config: BackendConfig) -> dict[str, Any]:
    """The parts of a backend config that change its answers (not its URL, key, timeouts or price)."""
    return {
        "name": config.name,
        "kind": config.kind,
        "model": config.model_id,
        "local_model": config.local_model,
        "n_ctx": config.n_ctx if config.kind == "local" else None,
    }


def outcome_config_key(
    task: Task,
    backend: BackendConfig,
    params: DecodingParams,
    *,
    judge: BackendConfig | None = None,
    multiple_choice: str = "auto",
) -> str:
    """Stable hash of (task, backend identity, decoding, judge, MC mode): configs never collide."""
    payload: dict[str, Any] = {
        "task": task.name,
        "task_version": getattr(task, "version", None),
        "backend": backend_identity(backend),
        "decoding": params.key(),
    }
    if task.kind == "multiple_choice":
        payload["multiple_choice"] = multiple_choice
    if task.kind == "judge" and judge is not None:
        payload["judge"] = backend_identity(judge)
    return stable_hash(payload)


def model_card(config: BackendConfig) -> ModelCard:
    """The store's card for a backend: token or hourly price, and whether it is self-served."""
    return ModelCard(
        name=config.name,
        provider="local" if config.kind == "local" else None,
        hosted=config.kind != "local",
        input_price_per_m=config.input_price_per_m,
        output_price_per_m=config.output_price_per_m,
        usd_per_hour=config.usd_per_hour,
        context_length=config.n_ctx if config.kind == "local" else None,
    )


def resolve_task(spec: TaskSpec) -> Task:
    """A built-in task by name, or a task YAML by path."""
    from rankroute.evaluate import tasks

    if spec.name.endswith((".yaml", ".yml")) or Path(spec.name).exists():
        return tasks.load_task(spec.name)
    return tasks.get_task(spec.name)


def _cost(generation: Generation, card: ModelCard) -> float | None:
    """The backend's cost when it priced the call; else tokens x price, or compute time x USD/hour."""
    if generation.cost_usd is not None:
        return float(generation.cost_usd)
    priced = card.token_cost(generation.input_tokens or 0, generation.output_tokens or 0)
    if priced is not None:
        return priced
    if card.usd_per_hour is not None and generation.latency_ms is not None:
        return card.usd_per_hour * generation.latency_ms / 3.6e6
    return None


def _extra(generation: Generation) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "itl_ms": generation.itl_ms,
        "tokens_per_s": generation.tokens_per_s,
        "tokens_counted_by": generation.tokens_counted_by,
        "finish_reason": generation.finish_reason,
    }
    extra.update({k: v for k, v in (generation.extra or {}).items() if k in ("peak_rss_mb", "model_size_mb")})
    return {k: v for k, v in extra.items() if v is not None}


class Runner:
    """Runs one EvalConfig against live backends and an open store."""

    def __init__(
        self,
        config: EvalConfig,
        store: OutcomeStore,
        *,
        run_id: str | None = None,
        on_planned: Callable[[dict[str, int]], None] | None = None,
        on_done: ProgressHook | None = None,
    ) -> None:
        self.config = config
        self.store = store
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.report = EvalReport(run_id=run_id or f"{config.run_name}-{stamp}-{uuid.uuid4().hex[:6]}")
        self.on_planned = on_planned
        self.on_done = on_done
        self._buffer: list[Outcome] = []
        self._last_flush = time.monotonic()
        self._writing: asyncio.Task[None] | None = None
        self._cards = {m.name: model_card(m) for m in config.models}
        self._no_loglik: set[str] = set()
        # scoring runs here, off the event loop: a code task's sandboxed test run takes up to its timeout
        self._scoring = ThreadPoolExecutor(config.scoring_workers, thread_name_prefix="rankroute-score")
        self._kinds = {m.name: m.kind for m in config.models}

    # -- planning --------------------------------------------------------------------------------
    def _issue(self, stage: str, problem: object, **where: str | None) -> None:
        self.report.issues.append(EvalIssue(stage=stage, problem=str(problem), **where))

    def plan(self) -> dict[str, list[WorkItem]]:
        """Resolve tasks, write their prompts, and list per model the work not yet stored."""
        tasks: list[tuple[TaskSpec, Task, list[TaskInstance]]] = []
        for spec in self.config.tasks:
            try:
                task = resolve_task(spec)
                sampling: dict[str, Any] = {} if spec.stratify is None else {"stratify": spec.stratify}
                instances = task.instances(limit=spec.limit, seed=spec.seed, **sampling)
            except DataError as exc:
                self._issue("task", exc, task=spec.name)
                continue
            for skipped in getattr(task, "skipped", None) or []:
                self._issue("row", f"row {skipped.row} skipped: {skipped.reason}", task=task.name)
            if not instances:
                self._issue("task", "no prompts to run", task=spec.name)
                continue
            self.store.write_prompts([inst.prompt for inst in instances], source=task.name)
            tasks.append((spec, task, instances))
        self.store.write_models(self._cards.values())
        if self.config.judge is not None:
            self.store.write_models([model_card(self.config.judge)])
        work: dict[str, list[WorkItem]] = {m.name: [] for m in self.config.models}
        for backend in self.config.models:
            per_task: list[list[WorkItem]] = []
            for spec, task, instances in tasks:
                params = task.decoding(self.config.decoding)
                if spec.max_tokens is not None:
                    params = params.model_copy(update={"max_tokens": spec.max_tokens})
                key = outcome_config_key(
                    task,
                    backend,
                    params,
                    judge=self.config.judge,
                    multiple_choice=self.config.multiple_choice,
                )
                self.report.config_keys[(backend.name, task.name)] = key
                done = {k[0] for k in self.store.outcome_keys(model=backend.name, config_key=key)}
                pending = []
                for inst in instances:
                    if inst.prompt.prompt_id in done:
                        self.report.already_stored += 1
                        continue
                    pending.append(WorkItem(backend.name, task.name, task, inst, key, params))
                per_task.append(pending)
            # interleave tasks, so a run stopped early has a share of every task rather than all of one
            work[backend.name] = [item for row in zip_longest(*per_task) for item in row if item is not None]
        self.report.planned = sum(len(items) for items in work.values())
        self.store.record_run(self.report.run_id, "eval", self.config.model_dump(mode="json"))
        if self.on_planned is not None:
            self.on_planned({name: len(items) for name, items in work.items()})
        return work

    # -- writing ---------------------------------------------------------------------------------
    def _record(self, outcome: Outcome) -> None:
        self._buffer.append(outcome)
        due = time.monotonic() - self._last_flush >= self.config.flush_interval_s
        if due or len(self._buffer) >= self.config.batch_size:
            self._flush_in_background()

    def _flush_in_background(self) -> None:
        """Start writing the buffer on a thread so requests keep flowing; one write at a time."""
        if self._writing is not None and not self._writing.done():
            return  # the buffer keeps growing and goes with the next write
        if self._writing is not None:
            self._writing.result()  # re-raise a failed write here rather than lose it
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._last_flush = time.monotonic()
        batch, self._buffer = self._buffer, []
        self._writing = loop.create_task(asyncio.to_thread(self._write, batch))

    async def _flush_every_interval(self) -> None:
        """Store what is buffered at least every flush_interval_s, even while no answer arrives."""
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            if self._buffer and time.monotonic() - self._last_flush >= self.config.flush_interval_s:
                self._flush_in_background()

    def _write(self, batch: list[Outcome]) -> None:
        if batch:
            self.store.write_outcomes(batch, source=self.report.run_id)
            self.report.completed += len(batch)

    async def drain(self) -> None:
        """Wait for the write in flight, then store what is still buffered."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing
        self.flush()

    def flush(self) -> None:
        """Write buffered outcomes now, in one transaction (prompts are already stored)."""
        self._last_flush = time.monotonic()
        batch, self._buffer = self._buffer, []
        self._write(batch)

    # -- answering -------------------------------------------------------------------------------
    async def _generate(self, backend: Backend, item: WorkItem) -> list[Generation]:
        """One answer per user turn (multi-turn prompts get the model's earlier answers in context)."""
        inst = item.instance
        if not inst.messages:
            return [await backend.complete(inst.completion_prompt, item.params)]
        messages = list(inst.messages)
        answers = [await backend.chat(messages, item.params)]
        for turn in (inst.prompt.turns or [])[1:]:
            messages += [
                {"role": "assistant", "content": answers[-1].text},
                {"role": "user", "content": turn},
            ]
            answers.append(await backend.chat(messages, item.params))
        return answers

    async def answer(self, backend: Backend, judge: Backend | None, item: WorkItem) -> Outcome:
        """Put one prompt to one model and score it the way its task is scored."""
        task, inst = item.task, item.instance
        by_loglik = self.config.multiple_choice != "generate" and item.model not in self._no_loglik
        if task.kind == "multiple_choice" and inst.choices and by_loglik:
            try:
                started = time.perf_counter()
                scoring = await task.loglikelihoods(backend, inst)
                # the backend's own time when it measures one (without loading the model), else the wall
                latency_ms = scoring.latency_ms or (time.perf_counter() - started) * 1000
            except BackendUnsupported:
                if self.config.multiple_choice == "loglikelihood":
                    raise
                self._no_loglik.add(item.model)
            else:
                score = await self._score(task.score_choices, inst, scoring.logliks)
                card = self._cards[item.model]
                cost = card.usd_per_hour * latency_ms / 3.6e6 if card.usd_per_hour is not None else None
                return self._outcome(
                    item,
                    score,
                    cost_usd=cost,
                    latency_ms=latency_ms,
                    input_tokens=scoring.context_tokens or None,
                    extra={**self._memory(item.model), **scoring.measured(), **(score.extra or {})},
                )
        generations = await self._generate(backend, item)
        generation = generations[-1]
        card = self._cards[item.model]
        costs = [_cost(g, card) for g in generations]
        extra: dict[str, Any] = {}
        if task.kind == "judge":
            if judge is None:
                raise DataError(f"task {task.name} needs a judge model", hint="set judge: in the eval config")
            judge_messages = task.judge_messages(inst, [g.text for g in generations])
            if not judge_messages:
                raise DataError(f"task {task.name} gave no judge prompt for {inst.prompt.prompt_id}")
            verdict = await judge.chat(judge_messages, item.params.model_copy(update={"max_tokens": 512}))
            score = await self._score(task.score_judgement, inst, verdict.text)
            extra = {
                "judge": verdict.model,
                "judgement": verdict.text[-500:],
                "judge_cost_usd": verdict.cost_usd,
            }
        else:
            score = await self._score(task.score, inst, generation.text)
        if len(generations) > 1:
            extra["turn_responses"] = [g.text for g in generations[:-1]]
        return self._outcome(
            item,
            score,
            cost_usd=None if None in costs else sum(c for c in costs if c is not None),
            input_tokens=sum(g.input_tokens for g in generations),
            output_tokens=sum(g.output_tokens for g in generations),
            latency_ms=sum(g.latency_ms for g in generations),
            ttft_ms=generations[0].ttft_ms,
            response=generation.text,
            extra={**_extra(generation), **extra, **(score.extra or {})},
        )

    async def _score(self, scorer: Callable[..., T], *args: Any) -> T:
        """Run a task's scorer on the scoring threads, so other answers keep arriving meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self._scoring, scorer, *args)

    def close(self) -> None:
        """Stop the scoring threads (once every answer is scored)."""
        self._scoring.shutdown(wait=True)

    def _outcome(self, item: WorkItem, score: Score, **measured: Any) -> Outcome:
        """The outcome of one work item under this run: its score plus what was measured answering it."""
        return Outcome(
            prompt_id=item.instance.prompt.prompt_id,
            model=item.model,
            quality=score.quality,
            raw_score=score.raw_score,
            metric=score.metric,
            run_id=self.report.run_id,
            config_key=item.config_key,
            **measured,
        )

    def _memory(self, model: str) -> dict[str, float]:
        """Peak memory of this process for in-process models (what the model costs in RAM), else nothing."""
        if self._kinds.get(model) != "local":
            return {}
        from rankroute.backends.local import peak_rss_mb

        return {"peak_rss_mb": round(peak_rss_mb(), 1)}

    async def _worker(self, backend: Backend, judge: Backend | None, queue: asyncio.Queue[WorkItem]) -> None:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            outcome: Outcome | None = None
            try:
                outcome = await self.answer(backend, judge, item)
            except (BackendError, DataError, ValueError) as exc:
                self._issue(
                    "call",
                    exc,
                    model=item.model,
                    task=item.task_name,
                    prompt_id=item.instance.prompt.prompt_id,
                )
            else:
                self._record(outcome)
            if self.on_done is not None:
                self.on_done(item.model, outcome)

    async def run_model(
        self, config: BackendConfig, items: Sequence[WorkItem], judge: Backend | None
    ) -> None:
        if not items:
            return
        try:
            backend = make_backend(config)
        except (BackendError, DataError) as exc:
            self._issue("model", exc, model=config.name)
            for item in items:
                if self.on_done is not None:
                    self.on_done(item.model, None)
            return
        queue: asyncio.Queue[WorkItem] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)
        try:
            workers = [self._worker(backend, judge, queue) for _ in range(self.config.concurrency)]
            await asyncio.gather(*workers)
        finally:
            await backend.aclose()

    async def _run_in_turn(
        self, models: Sequence[BackendConfig], work: dict[str, list[WorkItem]], judge: Backend | None
    ) -> None:
        """In-process models share this machine's cores: one at a time, so each is timed alone."""
        for model in models:
            await self.run_model(model, work[model.name], judge)

    async def run(self) -> EvalReport:
        started = time.perf_counter()
        work = self.plan()
        judge: Backend | None = None
        if self.config.judge is not None and any(
            i.task.kind == "judge" for items in work.values() for i in items
        ):
            judge = make_backend(self.config.judge)
        ticker = asyncio.create_task(self._flush_every_interval())
        try:
            await asyncio.gather(
                self._run_in_turn([m for m in self.config.models if m.kind == "local"], work, judge),
                *(self.run_model(m, work[m.name], judge) for m in self.config.models if m.kind != "local"),
            )
        finally:
            ticker.cancel()
            await self.drain()
            self.close()
            if judge is not None:
                await judge.aclose()
        self.report.elapsed_s = time.perf_counter() - started
        return self.report


def _progress_columns() -> list[Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("${task.fields[cost]:.5f}  failed {task.fields[failed]}"),
    ]


def run_eval(
    config: EvalConfig,
    *,
    store: OutcomeStore | None = None,
    console: Console | None = None,
    run_id: str | None = None,
) -> EvalReport:
    """Run a config to the end with a progress bar (ETA, running cost); outcomes land as they complete.

    Opens the config's store unless one is passed; `console=None` runs quietly.
    """
    from rich.progress import Progress

    if config.executor == "ray":
        from rankroute.evaluate.distributed import RayRunner

        runner_type: type[Runner] = RayRunner
    else:
        runner_type = Runner
    owned = store is None
    db = store if store is not None else OutcomeStore(config.store)
    try:
        if console is None:
            return asyncio.run(runner_type(config, db, run_id=run_id).run())
        with Progress(*_progress_columns(), console=console, transient=False) as progress:
            bars: dict[str, Any] = {}
            costs: dict[str, float] = {}
            failures: dict[str, int] = {}

            def planned(counts: dict[str, int]) -> None:
                bars["all"] = progress.add_task("all models", total=sum(counts.values()), cost=0.0, failed=0)
                for name, total in counts.items():
                    bars[name] = progress.add_task(name, total=total, cost=0.0, failed=0)
                    costs[name], failures[name] = 0.0, 0

            def done(model: str, outcome: Outcome | None) -> None:
                if outcome is None:
                    failures[model] += 1
                else:
                    costs[model] += outcome.cost_usd or 0.0
                progress.update(bars[model], advance=1, cost=costs[model], failed=failures[model])
                progress.update(
                    bars["all"], advance=1, cost=sum(costs.values()), failed=sum(failures.values())
                )

            runner = runner_type(config, db, run_id=run_id, on_planned=planned, on_done=done)
            return asyncio.run(runner.run())
    finally:
        if owned:
            db.close()
