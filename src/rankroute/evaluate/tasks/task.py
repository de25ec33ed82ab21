"""A loaded task: its instances (prompts with few-shot context) and how to score an answer to each."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
from collections import defaultdict
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rankroute.backends import Backend, DecodingParams, LocalBackend
from rankroute.backends.local import ContinuationScores
from rankroute.data.errors import DataError
from rankroute.data.records import Prompt
from rankroute.evaluate.tasks.adapters import ADAPTERS, LETTERS, Example, Excluded
from rankroute.evaluate.tasks.sources import load_rows, resolve_path
from rankroute.evaluate.tasks.spec import TaskSpec
from rankroute.metrics import (
    ExecutionResult,
    SandboxLimits,
    bleu,
    chrf,
    exact_match,
    humaneval_program,
    judge_score,
    mbpp_program,
    numeric_match,
    pass_at_k,
    rouge,
    run_program,
    sentence_chrf,
    token_f1,
)

logger = logging.getLogger(__name__)


class TaskInstance(BaseModel):
    """One prompt of a task, ready to send: chat messages and the same as plain text; for multiple choice
    also what log-likelihood scores: option i is `choices[i]` after `choice_contexts[i]`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    prompt: Prompt
    messages: list[dict[str, str]]
    completion_prompt: str
    choices: list[str] | None = None
    choice_contexts: list[str] | None = None
    target: Any = None


class Score(BaseModel):
    """How good one answer was: quality in [0, 1] for the outcome store, the metric's own value beside it."""

    quality: float = Field(ge=0.0, le=1.0)
    raw_score: float | None = None
    metric: str
    extra: dict[str, Any] = Field(default_factory=dict)


class SkippedRow(BaseModel):
    """A row the task could not use, and why (reported, never silently dropped)."""

    row: int
    reason: str


_LETTER_ANSWER = re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-Z])\b\)?", re.IGNORECASE)
_LEADING_LETTER = re.compile(r"^\W*\(?([A-Z])(?:[\).:,\s]|$)")
_CODE_BLOCK = re.compile(r"```(?:python|py)?[^\n]*\n(.*?)(?:```|$)", re.DOTALL)
_NUMBER_TEXT = r"(-?\$?\s*[0-9][0-9,]*(?:\.[0-9]+)?)"
_STATED_ANSWER = [
    re.compile(r"####\s*" + _NUMBER_TEXT),
    re.compile(r"\\boxed\{\s*\\?" + _NUMBER_TEXT),
    re.compile(r"final answer(?: is)?\s*[:=]?\s*\**\s*" + _NUMBER_TEXT, re.IGNORECASE),
    re.compile(r"\banswer is\s*[:=]?\s*\**\s*" + _NUMBER_TEXT, re.IGNORECASE),
]
_ANY_NUMBER = re.compile(r"-?[0-9][0-9,]*(?:\.[0-9]+)?")


def extract_final_number(output: str) -> str:
    """The final numeric answer of a worked solution: the first stated one ("#### 18", "\\boxed{18}",
    "The final answer is $18.") as lm-eval's strict match takes it, else the last number in the text
    (its flexible match); "" when there is none. Small models often go on after stating the answer
    (a new made-up question), so the first stated answer beats the last number."""
    for pattern in _STATED_ANSWER:
        found = pattern.search(output)
        if found:
            return found.group(1).replace("$", "").replace(" ", "").rstrip(".,")
    numbers = _ANY_NUMBER.findall(output)
    return numbers[-1].rstrip(".,") if numbers else ""


def extract_letter(output: str, count: int) -> int | None:
    """The chosen option's index from a generated answer ("B", "(B) ...", "The answer is B"), or None."""
    allowed = LETTERS[:count]
    for pattern in (_LEADING_LETTER, _LETTER_ANSWER):
        for match in pattern.finditer(output.strip()):
            letter = match.group(1).upper()
            if letter in allowed:
                return allowed.index(letter)
    return None


def extract_code(output: str) -> str:
    """The code in an answer: the first fenced block, else MBPP's `[BEGIN] ... [DONE]`, else the text."""
    found = _CODE_BLOCK.search(output)
    if found:
        return found.group(1)
    if "[BEGIN]" in output:
        return output.split("[BEGIN]", 1)[1].split("[DONE]", 1)[0].strip("\n")
    return output


class Task:
    """A task built from a `TaskSpec`: read rows through its adapter, render prompts, score answers."""

    def __init__(
        self, spec: TaskSpec, base_dir: Path | None = None, sandbox: SandboxLimits | None = None
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.kind = spec.kind
        self.base_dir = base_dir
        self.sandbox = sandbox or SandboxLimits(timeout_s=10)
        if spec.adapter not in ADAPTERS:
            raise DataError(
                f"task {spec.name}: unknown adapter {spec.adapter!r}",
                hint=f"use one of {sorted(ADAPTERS)} (`columns` for your own file)",
            )
        if spec.choice_format == "partial" and spec.kind == "multiple_choice" and spec.fewshot.k:
            raise DataError(f"task {spec.name}: partial scoring (choice_format: partial) takes no few-shot")
        environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
        self._templates = {
            field: self._compile(environment, field, text)
            for field, text in (
                ("template", spec.template),
                ("completion_template", spec.completion_template),
                ("answer_template", spec.answer_template),
                ("system", spec.system),
                ("loglikelihood_template", spec.loglikelihood_template),
            )
            if text is not None
        }
        self.skipped: list[SkippedRow] = []
        self._shot_cache: dict[tuple[str, int], str] = {}
        self.version = stable_spec_hash(spec)
        """Changes whenever the spec does, so outcomes scored under an older definition are not reused."""

    def decoding(self, params: DecodingParams) -> DecodingParams:
        """`params` with this task's own stop sequences and generation budget where it sets them."""
        updates: dict[str, Any] = {}
        if self.spec.stop is not None:
            updates["stop"] = list(self.spec.stop)
        if self.spec.max_tokens is not None:
            updates["max_tokens"] = self.spec.max_tokens
        return params.model_copy(update=updates) if updates else params

    def __repr__(self) -> str:
        return f"Task(name={self.name!r}, kind={self.kind!r})"

    def _compile(self, environment: jinja2.Environment, field: str, text: str) -> jinja2.Template:
        try:
            return environment.from_string(text)
        except jinja2.TemplateSyntaxError as error:
            raise DataError(
                f"task {self.name}: field {field!r} is not a valid jinja2 template: {error.message} "
                f"(line {error.lineno})",
                hint="fix the template, e.g. close every {{ ... }} and {% ... %}",
            ) from error

    def _render(self, field: str, example: Example) -> str:
        values = {**example.fields, "reference": example.reference, "category": example.category}
        try:
            return self._templates[field].render(**values).strip()
        except jinja2.UndefinedError as error:
            raise DataError(
                f"task {self.name}: field {field!r} uses an unknown variable ({error.message})",
                row=example.source_id,
                hint=f"variables available: {sorted(values)}",
            ) from error
        except jinja2.TemplateError as error:
            raise DataError(
                f"task {self.name}: field {field!r} failed to render: {error}", row=example.source_id
            ) from error

    # -- data -------------------------------------------------------------------------------------
    def _adapt(
        self, rows: list[dict[str, Any]], what: str, options: dict[str, Any] | None = None
    ) -> tuple[list[Example], list[SkippedRow]]:
        convert = ADAPTERS[self.spec.adapter]
        options = self.spec.adapter_options if options is None else {**self.spec.adapter_options, **options}
        examples: list[Example] = []
        skipped: list[SkippedRow] = []
        for index, row in enumerate(rows):
            if "__error__" in row:
                skipped.append(SkippedRow(row=index, reason=str(row["__error__"])))
                continue
            try:
                examples.append(convert(row, index, options))
            except Excluded:
                continue
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
                reason = f"missing field {error}" if isinstance(error, KeyError) else str(error)
                skipped.append(SkippedRow(row=index, reason=reason))
        if skipped:
            logger.warning(
                "task %s: skipped %d malformed row(s) of %s; first: row %d: %s",
                self.name,
                len(skipped),
                what,
                skipped[0].row,
                skipped[0].reason,
            )
        return examples, skipped

    @cached_property
    def examples(self) -> list[Example]:
        """Every usable row of the task's source, in file order (malformed rows are in `skipped`)."""
        examples, self.skipped = self._adapt(
            load_rows(self.spec.source, self.base_dir), self.spec.source.describe()
        )
        if not examples:
            raise DataError(
                f"task {self.name} has no usable rows in {self.spec.source.describe()}",
                hint=f"{len(self.skipped)} row(s) were malformed; first: {self.skipped[0].reason}"
                if self.skipped
                else "the source is empty",
            )
        return examples

    @cached_property
    def fewshot_pool(self) -> list[Example]:
        source = self.spec.fewshot.source
        if source is None:
            return self.examples
        rows = load_rows(source, self.base_dir)
        examples, _ = self._adapt(rows, source.describe(), self.spec.fewshot.adapter_options)
        return examples

    @cached_property
    def judge_prompts(self) -> dict[str, dict[str, Any]]:
        path = self.spec.adapter_options.get("judge_prompts")
        if not path:
            raise DataError(
                f"task {self.name}: a judge task needs adapter_options.judge_prompts (a JSONL file)"
            )
        from rankroute.evaluate.tasks.spec import DataSource

        resolved = resolve_path(
            DataSource(shared=path) if not Path(path).is_absolute() else DataSource(path=path)
        )
        prompts = [
            json.loads(line) for line in resolved.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        return {prompt["name"]: prompt for prompt in prompts}

    # -- instances --------------------------------------------------------------------------------
    def instances(
        self, limit: int | None = None, seed: int = 0, stratify: bool | str | None = True
    ) -> list[TaskInstance]:
        """All instances, or a seeded sample of `limit`, stratified by category (or the named field).

        The sample keeps file order, and the same (limit, seed) gives the same prompts on every run.
        """
        examples = self.examples
        if limit is not None and limit < len(examples):
            examples = self._sample(examples, limit, seed, stratify)
        return [self._instance(example) for example in examples]

    def _sample(
        self, examples: list[Example], limit: int, seed: int, stratify: bool | str | None
    ) -> list[Example]:
        rng = np.random.default_rng(seed)
        key = "category" if stratify is True else (stratify or None)
        groups: dict[Any, list[int]] = defaultdict(list)
        for position, example in enumerate(examples):
            value = None
            if key is not None:
                value = example.category if key == "category" else example.fields.get(key)
            groups[value].append(position)
        if len(groups) <= 1:
            chosen = rng.choice(len(examples), size=limit, replace=False)
            return [examples[i] for i in sorted(chosen)]
        # proportional allocation, largest remainders first, then a seeded draw inside each group
        names = sorted(groups, key=str)
        shares = [limit * len(groups[name]) / len(examples) for name in names]
        counts = [math.floor(share) for share in shares]
        order = sorted(range(len(names)), key=lambda i: (shares[i] - counts[i], -i), reverse=True)
        for i in order[: limit - sum(counts)]:
            counts[i] += 1
        chosen_positions: list[int] = []
        for name, count in zip(names, counts, strict=True):
            members = groups[name]
            chosen_positions.extend(members[i] for i in rng.choice(len(members), size=count, replace=False))
        return [examples[i] for i in sorted(chosen_positions)]

    @cached_property
    def _pool_by_category(self) -> dict[str | None, list[Example]]:
        groups: dict[str | None, list[Example]] = defaultdict(list)
        for shot in self.fewshot_pool:
            groups[shot.category].append(shot)
        return groups

    def _shots(self, example: Example) -> list[Example]:
        """k examples for this prompt, seeded by the prompt's id; never the prompt itself."""
        fewshot = self.spec.fewshot
        if fewshot.k == 0:
            return []
        pool = self.fewshot_pool
        if fewshot.same_category and example.category is not None:
            pool = self._pool_by_category.get(example.category) or pool
        if fewshot.source is None:
            pool = [shot for shot in pool if shot.source_id != example.source_id]
        rng = random.Random(f"{fewshot.seed}/{self.name}/{example.source_id}")
        return rng.sample(pool, min(fewshot.k, len(pool)))

    def _render_shot(self, field: str, shot: Example) -> str:
        """Shots repeat across prompts (MMLU: 5 of 285 dev rows for 14,042), so each is rendered once."""
        key = (field, id(shot))
        if key not in self._shot_cache:
            self._shot_cache[key] = self._render(field, shot)
        return self._shot_cache[key]

    def _instance(self, example: Example) -> TaskInstance:
        user = self._render("template", example)
        plain_field = "completion_template" if "completion_template" in self._templates else "template"
        plain = user if plain_field == "template" else self._render(plain_field, example)
        system = self._render("system", example) if "system" in self._templates else None
        messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
        blocks: list[str] = [system] if system else []
        for shot in self._shots(example):
            shot_user, shot_answer = self._render("template", shot), self._render("answer_template", shot)
            messages += [
                {"role": "user", "content": shot_user},
                {"role": "assistant", "content": shot_answer},
            ]
            blocks.append(f"{self._render(plain_field, shot)} {shot_answer}")
        messages.append({"role": "user", "content": user})
        blocks.append(plain)
        choices, contexts = None, None
        if self.kind == "multiple_choice" and example.choices:
            choices, contexts = self._choice_requests(example, system)
        prompt = Prompt(
            prompt_id=f"{self.name}/{example.source_id}",
            text=user,
            turns=example.turns,
            dataset=self.name,
            category=example.category,
            split=self.spec.source.split if self.spec.source.hf else None,
            reference=example.reference or None,
            metadata={"task_kind": self.kind, "source_id": example.source_id},
        )
        target = example.target
        if self.kind == "multiple_choice":
            target = {"answer": target, "choices": example.choices}
        return TaskInstance(
            prompt=prompt,
            messages=messages,
            completion_prompt="\n\n".join(blocks),
            choices=choices,
            choice_contexts=contexts,
            target=target,
        )

    def _continuations(self, example: Example) -> list[str]:
        """What log-likelihood scores for each option, after the target delimiter (a space)."""
        assert example.choices is not None
        if self.spec.choice_format == "letter":
            return [f" {LETTERS[i]}" for i in range(len(example.choices))]
        if self.spec.choice_format == "partial":
            return [" " + str(example.fields["continuation"])] * len(example.choices)
        return [f" {choice}" for choice in example.choices]

    def _choice_requests(self, example: Example, system: str | None) -> tuple[list[str], list[str]]:
        """(continuation, context) per option in lm-evaluation-harness's manner: few-shot blocks with
        the gold continuation, then the question's context (for partial scoring: the sentence up to the
        blank with option i filled in)."""
        field = "loglikelihood_template" if "loglikelihood_template" in self._templates else None
        field = field or ("completion_template" if "completion_template" in self._templates else "template")
        blocks: list[str] = [system] if system else []
        for shot in self._shots(example):
            if shot.choices:  # TruthfulQA's target is the truth flag of every option: its first true one
                index = shot.target.index(True) if isinstance(shot.target, list) else int(shot.target)
                gold = self._continuations(shot)[index]
            else:
                gold = f" {shot.reference}"
            blocks.append(self._render_shot(field, shot) + gold)
        continuations = self._continuations(example)
        if self.spec.choice_format == "partial":
            options = example.fields["context_options"]
            return continuations, ["\n\n".join([*blocks, str(option)]) for option in options]
        context = "\n\n".join([*blocks, self._render(field, example)])
        return continuations, [context] * len(continuations)

    async def loglikelihoods(self, backend: Backend, instance: TaskInstance) -> ContinuationScores:
        """Score every option of `instance` on `backend`: one call per distinct context, so the shared
        context is evaluated once (with its measurements where the backend reports them)."""
        if not instance.choices or not instance.choice_contexts:
            raise DataError(f"task {self.name}: {instance.prompt.prompt_id} has no options to score")
        by_context: dict[str, list[int]] = defaultdict(list)
        for index, context in enumerate(instance.choice_contexts):
            by_context[context].append(index)
        logliks = [0.0] * len(instance.choices)
        total = ContinuationScores(logliks=[])
        for context, indices in by_context.items():
            continuations = [instance.choices[i] for i in indices]
            if isinstance(backend, LocalBackend):
                part = await backend.score_continuations(context, continuations)
            else:
                part = ContinuationScores(logliks=await backend.loglikelihood(context, continuations))
            for index, value in zip(indices, part.logliks, strict=True):
                logliks[index] = value
            total.context_tokens = max(total.context_tokens, part.context_tokens)
            total.continuation_tokens += part.continuation_tokens
            total.evaluated_tokens += part.evaluated_tokens
            total.compute_ms += part.compute_ms
            total.latency_ms += part.latency_ms
            total.peak_rss_mb = part.peak_rss_mb
        total.logliks = logliks
        return total

    # -- scoring ----------------------------------------------------------------------------------
    def score(self, instance: TaskInstance, output: str) -> Score:
        """Score a generated answer (generate, code, and multiple choice by the letter it names)."""
        metric = self.spec.metric
        if self.kind == "judge":
            raise DataError(
                f"task {self.name} is judged by a model: send judge_messages() to the judge, "
                "then score its reply with score_judgement()"
            )
        if self.kind == "multiple_choice":
            count = len(instance.target["choices"])
            picked = extract_letter(output, count)
            if picked is None:  # a model may answer with the option's text instead of its letter
                texts = [exact_match(output, choice) for choice in instance.target["choices"]]
                picked = texts.index(1.0) if 1.0 in texts else None
            return self._choice_score(instance, picked, "letter")
        if self.kind == "code":
            return self._code_score(instance, output)
        answer = self._extract(output)
        reference = instance.prompt.reference or ""
        if metric == "exact_match":
            value = exact_match(answer, str(instance.target))
            return Score(quality=value, raw_score=value, metric=metric)
        if metric == "numeric_match":
            value = numeric_match(answer, str(instance.target))
            return Score(quality=value, raw_score=value, metric=metric)
        if metric == "token_f1":
            value = token_f1(answer, str(instance.target))
            return Score(quality=value, raw_score=value, metric=metric)
        if metric == "rouge":
            scores = rouge([answer], [reference])
            extra = {**scores, "prediction": answer, "reference": reference}
            return Score(quality=scores["rougeL"], raw_score=scores["rougeL"], metric="rougeL", extra=extra)
        if metric == "translation":
            value = sentence_chrf(answer, reference)
            extra = {"prediction": answer, "reference": reference}
            return Score(quality=value / 100, raw_score=value, metric="chrf", extra=extra)
        if metric == "truthfulqa_generation":
            return self._truthfulqa_generation(instance, answer)
        raise DataError(f"task {self.name}: metric {metric!r} cannot score a generated answer")

    def _extract(self, output: str) -> str:
        extraction = self.spec.extraction
        text = output.strip()
        if extraction == "first_line":
            return text.splitlines()[0] if text else ""
        if extraction == "code":
            return extract_code(output)
        if extraction == "number":
            return extract_final_number(output)
        return text

    def _choice_score(self, instance: TaskInstance, picked: int | None, scored_by: str) -> Score:
        target = instance.target["answer"]
        extra: dict[str, Any] = {"choice": picked, "scored_by": scored_by}
        if isinstance(target, list):  # TruthfulQA: truth flag of every choice
            value = float(picked is not None and target[picked])
            metric = "mc1" if self.spec.metric == "choice" else "mc2"
            return Score(quality=value, raw_score=value, metric=metric, extra=extra)
        value = float(picked == target)
        return Score(quality=value, raw_score=value, metric="accuracy", extra=extra)

    def score_choices(self, instance: TaskInstance, logliks: list[float]) -> Score:
        """Multiple choice by log-likelihood: the most likely continuation is the answer (acc), or the
        most likely per UTF-8 byte of the option (acc_norm; lm-eval divides by the option's length);
        both are kept in `extra`, `choice_metric` says which is the quality. TruthfulQA MC2: the
        normalised probability mass on the true answers."""
        count = len(instance.target["choices"])
        if len(logliks) != count or not all(math.isfinite(value) for value in logliks):
            raise DataError(
                f"task {self.name}: expected {count} finite log-likelihoods for {instance.prompt.prompt_id}, "
                f"got {logliks}"
            )
        picked = int(np.argmax(logliks))
        target = instance.target["answer"]
        if self.spec.metric == "choice" and not isinstance(target, list):
            lengths = [max(len(str(choice).encode()), 1) for choice in instance.target["choices"]]
            if self.spec.choice_format == "letter" or self.spec.choice_format == "partial":
                lengths = [1] * count  # the scored continuations are equally long: acc_norm == acc
            picked_norm = int(np.argmax(np.asarray(logliks) / np.asarray(lengths)))
            acc, acc_norm = float(picked == target), float(picked_norm == target)
            use_norm = self.spec.choice_metric == "acc_norm"
            extra = {
                "choice": picked_norm if use_norm else picked,
                "choice_acc": picked,
                "choice_acc_norm": picked_norm,
                "acc": acc,
                "acc_norm": acc_norm,
                "logliks": [round(value, 4) for value in logliks],
                "scored_by": "loglik",
            }
            value = acc_norm if use_norm else acc
            return Score(
                quality=value, raw_score=value, metric="acc_norm" if use_norm else "accuracy", extra=extra
            )
        if self.spec.metric == "truthfulqa_mc2":
            probabilities = np.exp(np.asarray(logliks) - max(logliks))
            truth = np.asarray(instance.target["answer"], dtype=bool)
            mass = float(probabilities[truth].sum() / probabilities.sum())
            return Score(
                quality=mass, raw_score=mass, metric="mc2", extra={"choice": picked, "scored_by": "loglik"}
            )
        return self._choice_score(instance, picked, "loglik")

    def _truthfulqa_generation(self, instance: TaskInstance, answer: str) -> Score:
        """TruthfulQA generation the upstream way with ROUGE-L: true when the answer is closer to some
        correct answer than to every incorrect one."""
        correct, incorrect = instance.target["correct"], instance.target["incorrect"]
        true_scores = [rouge([answer], [reference])["rougeL"] for reference in correct]
        false_scores = [rouge([answer], [reference])["rougeL"] for reference in incorrect]
        best_true = max(true_scores)
        value = float(best_true > max(false_scores))
        extra = {"max_rougeL_correct": best_true, "max_rougeL_incorrect": max(false_scores)}
        return Score(quality=value, raw_score=best_true - max(false_scores), metric="rougeL_acc", extra=extra)

    def program(self, instance: TaskInstance, output: str) -> str:
        """The program the sandbox runs for a code answer: the candidate plus the task's tests."""
        target = instance.target
        code = extract_code(output)
        if target["kind"] == "humaneval":
            defines_entry = re.search(
                rf"^\s*def\s+{re.escape(target['entry_point'])}\s*\(", code, re.MULTILINE
            )
            completion = ("\n" + code) if defines_entry else code
            return humaneval_program(target["prompt"], completion, target["test"], target["entry_point"])
        return mbpp_program(code, target["tests"], target["setup"], target["imports"])

    def _code_score(self, instance: TaskInstance, output: str) -> Score:
        result: ExecutionResult = run_program(self.program(instance, output), self.sandbox)
        value = float(result.passed)
        extra = {
            "status": result.status,
            "prompt_id": instance.prompt.prompt_id,
            "stderr_tail": result.stderr_tail[-300:],
        }
        return Score(quality=value, raw_score=value, metric="pass@1", extra=extra)

    # -- judging ----------------------------------------------------------------------------------
    def judge_messages(self, instance: TaskInstance, answers: list[str]) -> list[dict[str, str]] | None:
        """For judge tasks, the judge's chat messages grading the last of `answers` (one per user turn so
        far) with FastChat's single-answer prompts; None for tasks scored without a judge."""
        if self.kind != "judge":
            return None
        turns = instance.prompt.turns or [instance.prompt.text]
        if not 1 <= len(answers) <= len(turns):
            raise DataError(
                f"task {self.name}: {instance.prompt.prompt_id} has {len(turns)} turn(s), "
                f"got {len(answers)} answer(s)"
            )
        reference = instance.target.get("reference")
        name = (
            self.spec.judge_reference_prompt
            if reference and self.spec.judge_reference_prompt
            else self.spec.judge_prompt
        )
        if name is None:
            raise DataError(f"task {self.name}: a judge task needs judge_prompt set")
        if len(answers) > 1:
            name = f"{name}-multi-turn"
        if name not in self.judge_prompts:
            raise DataError(
                f"task {self.name}: no judge prompt {name!r}", hint=f"known: {sorted(self.judge_prompts)}"
            )
        judge = self.judge_prompts[name]
        values: dict[str, str] = {"question": turns[0], "answer": answers[0]}
        for position, (turn, answer) in enumerate(zip(turns, answers, strict=False), start=1):
            values[f"question_{position}"] = turn
            values[f"answer_{position}"] = answer
        for position, text in enumerate(reference or [], start=1):
            values[f"ref_answer_{position}"] = text
        return [
            {"role": "system", "content": judge["system_prompt"]},
            {"role": "user", "content": judge["prompt_template"].format(**values)},
        ]

    def score_judgement(self, instance: TaskInstance, judge_output: str) -> Score:
        """The judge's `[[rating]]` (1-10) as quality (rating - 1) / 9; no verdict -> quality 0, flagged."""
        rating = judge_score(judge_output, "rating")
        if not isinstance(rating, float) or not 1 <= rating <= 10:
            return Score(
                quality=0.0, raw_score=None, metric="judge_rating", extra={"judge_parse_error": True}
            )
        return Score(quality=(rating - 1) / 9, raw_score=rating, metric="judge_rating")

    # -- corpus level -----------------------------------------------------------------------------
    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        """Corpus-level figures: mean quality always; BLEU/chrF, mean ROUGE, pass@k or mean rating by task."""
        if not scores:
            return {"n": 0.0}
        result = {"n": float(len(scores)), "quality": float(np.mean([score.quality for score in scores]))}
        metric = self.spec.metric
        if metric == "translation":
            predictions = [score.extra["prediction"] for score in scores]
            references = [score.extra["reference"] for score in scores]
            result["bleu"] = bleu(predictions, references, target_language=self.spec.target_language)
            result["chrf"] = chrf(predictions, references)
        elif metric == "rouge":
            for key in ("rouge1", "rouge2", "rougeL"):
                result[key] = float(np.mean([score.extra[key] for score in scores]))
        elif metric == "pass_at_k":
            samples: dict[str, list[float]] = defaultdict(list)
            for score in scores:
                samples[score.extra.get("prompt_id", "")].append(score.quality)
            smallest = min(len(values) for values in samples.values())
            for k in self.spec.k_values:
                if k <= smallest:
                    result[f"pass@{k}"] = float(
                        np.mean([pass_at_k(len(v), int(sum(v)), k) for v in samples.values()])
                    )
        elif metric == "judge_rating":
            ratings = [score.raw_score for score in scores if score.raw_score is not None]
            result["rating"] = float(np.mean(ratings)) if ratings else float("nan")
        elif self.kind == "multiple_choice":
            result["accuracy" if metric == "choice" else "mc2"] = result["quality"]
            for key in ("acc", "acc_norm"):
                values = [score.extra[key] for score in scores if key in score.extra]
                if len(values) == len(scores):
                    result[key] = float(np.mean(values))
        return result


def stable_spec_hash(spec: TaskSpec) -> str:
    """12 hex characters of SHA-256 over the spec's canonical JSON."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
