"""The evaluation runner: models x tasks, concurrently, every outcome stored as soon as it is scored.

Resumable by construction: each outcome's config_key hashes (task, backend identity, decoding), the runner
skips every (prompt, model, config_key) the store already holds. Writes are batched on a writer thread: one
transaction per `batch_size` outcomes or per `flush_interval_s`, whichever comes first (the thread wakes
every interval even while no answer arrives). So a run killed at any moment loses at most what was scored in
the last `flush_interval_s` (1 s by default) plus the one write in flight, which lands whole or not at all,
and it never records a duplicate.

The event loop only asks: each answer's scoring, pricing and Outcome record are done on the scoring threads,
the answers of every few milliseconds handed over together (one thread hop per group, not per answer), and
each outcome goes to the writer's buffer the moment it is scored.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
PROGRESS_EVERY_S = 0.05
SCORING_GROUP_S = 0.005
"""Answers are handed to the scoring threads in groups gathered over this long: each hand-over wakes a
thread, which costs the event loop more than the scoring of a GSM8K answer (measured: at concurrency 1,
grouping per 5 ms rather than per turn of the loop cut the client's CPU per request by ~13%)."""
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
"""Called once per finished work item with the model name and its outcome (None when it failed); from a
scoring thread or the event loop, so it must be thread-safe."""

Finish = Callable[[], Outcome]
"""The rest of one work item once the model has answered: score, price and build its Outcome."""


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
        self._buffered = threading.Condition()  # guards _buffer and _last_flush; wakes the writer
        self._writer: threading.Thread | None = None
        self._stop_writing = False
        self._write_error: BaseException | None = None
        self._answered: list[tuple[WorkItem, Finish]] = []
        self._scoring_jobs: set[Future[None]] = set()
        self._scoring_error: BaseException | None = None
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
        """Buffer one scored outcome for the writer (any thread); a full batch wakes the writer at once."""
        with self._buffered:
            self._buffer.append(outcome)
            if len(self._buffer) >= self.config.batch_size:
                self._buffered.notify()

    def _write_every_interval(self) -> None:
        """The writer thread: store the buffer when a batch fills or flush_interval_s has passed, whichever
        comes first, one transaction at a time, until told to stop (then the rest goes with drain)."""
        interval, batch_size = self.config.flush_interval_s, self.config.batch_size
        while True:
            with self._buffered:
                while not self._stop_writing and len(self._buffer) < batch_size:
                    remaining = self._last_flush + interval - time.monotonic()
                    if remaining <= 0:
                        break
                    self._buffered.wait(remaining)
                if self._stop_writing:
                    return
                self._last_flush = time.monotonic()
                batch, self._buffer = self._buffer, []
            try:
                self._write(batch)
            except BaseException as error:  # kept for the final flush, raised on the event loop
                with self._buffered:
                    self._buffer[:0] = batch
                self._write_error = error
                return

    def _start_writer(self) -> None:
        self._stop_writing, self._write_error = False, None
        self._last_flush = time.monotonic()
        self._writer = threading.Thread(
            target=self._write_every_interval, name="rankroute-store", daemon=True
        )
        self._writer.start()

    def _write(self, batch: list[Outcome]) -> None:
        if batch:
            self.store.write_outcomes(batch, source=self.report.run_id)
            self.report.completed += len(batch)

    async def drain(self) -> None:
        """Stop the writer after the write in flight, then store what is still buffered."""
        if self._writer is not None:
            with self._buffered:
                self._stop_writing = True
                self._buffered.notify()
            writer, self._writer = self._writer, None
            await asyncio.to_thread(writer.join)
        self.flush()

    def flush(self) -> None:
        """Write buffered outcomes now, in one transaction (prompts are already stored)."""
        with self._buffered:
            self._last_flush = time.monotonic()
            batch, self._buffer = self._buffer, []
        self._write(batch)

    # -- scoring ---------------------------------------------------------------------------------
    def _answered_one(self, item: WorkItem, finish: Finish) -> None:
        """Queue an answer for scoring; the answers of the next SCORING_GROUP_S go to a thread together."""
        self._answered.append((item, finish))
        if len(self._answered) == 1:
            asyncio.get_running_loop().call_later(SCORING_GROUP_S, self._dispatch_scoring)
        failure = self._write_error or self._scoring_error
        if failure is not None:
            raise failure

    def _dispatch_scoring(self) -> None:
        group, self._answered = self._answered, []
        if group:
            job = self._scoring.submit(self._score_group, group)
            self._scoring_jobs.add(job)
            job.add_done_callback(self._scoring_done)

    def _scoring_done(self, job: Future[None]) -> None:
        self._scoring_jobs.discard(job)
        if not job.cancelled() and job.exception() is not None:
            self._scoring_error = self._scoring_error or job.exception()

    def _item_failed(self, item: WorkItem, exc: Exception) -> None:
        self._issue(
            "call", exc, model=item.model, task=item.task_name, prompt_id=item.instance.prompt.prompt_id
        )

    def _score_group(self, group: list[tuple[WorkItem, Finish]]) -> None:
        """On a scoring thread: score each answer and buffer its outcome as soon as it is scored."""
        for item, finish in group:
            outcome: Outcome | None = None
            try:
                outcome = finish()
            except (BackendError, DataError, ValueError) as exc:
                self._item_failed(item, exc)
            else:
                self._record(outcome)
            if self.on_done is not None:
                self.on_done(item.model, outcome)

    async def _score_all(self) -> None:
        """Hand over what is still queued and wait until every answer is scored."""
        self._dispatch_scoring()
        while jobs := list(self._scoring_jobs):  # a snapshot: scoring threads remove finished jobs
            await asyncio.wait([asyncio.wrap_future(job) for job in jobs])

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

    async def _collect(self, backend: Backend, judge: Backend | None, item: WorkItem) -> Finish:
        """Ask the model (and the judge): the event loop's part of a work item. Scoring, pricing and the
        Outcome come back as a function, for a scoring thread."""
        task, inst = item.task, item.instance
        card = self._cards[item.model]
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
                memory = self._memory(item.model)

                def finish_choices() -> Outcome:
                    score = task.score_choices(inst, scoring.logliks)
                    cost = card.usd_per_hour * latency_ms / 3.6e6 if card.usd_per_hour is not None else None
                    return self._outcome(
                        item,
                        score,
                        cost_usd=cost,
                        latency_ms=latency_ms,
                        input_tokens=scoring.context_tokens or None,
                        extra={**memory, **scoring.measured(), **(score.extra or {})},
                    )

                return finish_choices
        generations = await self._generate(backend, item)
        verdict: Generation | None = None
        if task.kind == "judge":
            if judge is None:
                raise DataError(f"task {task.name} needs a judge model", hint="set judge: in the eval config")
            judge_messages = task.judge_messages(inst, [g.text for g in generations])
            if not judge_messages:
                raise DataError(f"task {task.name} gave no judge prompt for {inst.prompt.prompt_id}")
            verdict = await judge.chat(judge_messages, item.params.model_copy(update={"max_tokens": 512}))

        def finish_generation() -> Outcome:
            generation = generations[-1]
            extra: dict[str, Any] = {}
            if verdict is not None:
                score = task.score_judgement(inst, verdict.text)
                extra = {
                    "judge": verdict.model,
                    "judgement": verdict.text[-500:],
                    "judge_cost_usd": verdict.cost_usd,
                }
            else:
                score = task.score(inst, generation.text)
            if len(generations) > 1:
                extra["turn_responses"] = [g.text for g in generations[:-1]]
            costs = [_cost(g, card) for g in generations]
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

        return finish_generation

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

    async def _worker(self, backend: Backend, judge: Backend | None, queue: deque[WorkItem]) -> None:
        while queue:
            item = queue.popleft()
            try:
                finish = await self._collect(backend, judge, item)
            except (BackendError, DataError, ValueError) as exc:
                self._item_failed(item, exc)
                if self.on_done is not None:
                    self.on_done(item.model, None)
            else:
                self._answered_one(item, finish)

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
        queue = deque(items)
        try:
            workers = [self._worker(backend, judge, queue) for _ in range(self.config.concurrency)]
            await asyncio.gather(*workers)
        finally:
            self._dispatch_scoring()
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
        self._start_writer()
        try:
            await asyncio.gather(
                self._run_in_turn([m for m in self.config.models if m.kind == "local"], work, judge),
                *(self.run_model(m, work[m.name], judge) for m in self.config.models if m.kind != "local"),
            )
        finally:
            try:
                await self._score_all()
            finally:
                await self.drain()
                self.close()
                if judge is not None:
                    await judge.aclose()
        if self._scoring_error is not None:
            raise self._scoring_error
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
            finished: dict[str, int] = {}
            counting = threading.Lock()  # done() is called from the scoring threads and the event loop
            shown_at = [0.0]

            def planned(counts: dict[str, int]) -> None:
                bars["all"] = progress.add_task("all models", total=sum(counts.values()), cost=0.0, failed=0)
                for name, total in counts.items():
                    bars[name] = progress.add_task(name, total=total, cost=0.0, failed=0)
                    costs[name], failures[name], finished[name] = 0.0, 0, 0

            def show() -> None:
                for name in finished:
                    progress.update(
                        bars[name], completed=finished[name], cost=costs[name], failed=failures[name]
                    )
                progress.update(
                    bars["all"],
                    completed=sum(finished.values()),
                    cost=sum(costs.values()),
                    failed=sum(failures.values()),
                )

            def done(model: str, outcome: Outcome | None) -> None:
                with counting:
                    finished[model] += 1
                    if outcome is None:
                        failures[model] += 1
                    else:
                        costs[model] += outcome.cost_usd or 0.0
                    # the bars redraw ten times a second: updating them per answer is wasted work
                    if time.monotonic() - shown_at[0] >= PROGRESS_EVERY_S:
                        shown_at[0] = time.monotonic()
                        show()

            runner = runner_type(config, db, run_id=run_id, on_planned=planned, on_done=done)
            try:
                return asyncio.run(runner.run())
            finally:
                with counting:
                    if bars:
                        show()
    finally:
        if owned:
            db.close()
