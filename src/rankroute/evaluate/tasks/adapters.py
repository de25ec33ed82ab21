"""Row adapters: one function per data layout, turning a raw row into an `Example` (fields, gold, choices).

A task spec names its adapter; `columns` serves users' own files. An adapter raises `Excluded` for rows
outside the configured split (not an error) and any other exception for a malformed row (skipped, reported).
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rankroute.evaluate.tasks.sources import shared_data_root
from rankroute.metrics import extract_number

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Example(BaseModel):
    """One row as the task sees it: template fields, the gold answer as text and as `target` for scoring."""

    source_id: str
    fields: dict[str, Any]
    reference: str
    target: Any
    choices: list[str] | None = None
    category: str | None = None
    split: str | None = None
    turns: list[str] | None = None


class Excluded(Exception):
    """The row is valid but not part of this task (another split of the same file)."""


Adapter = Callable[[dict[str, Any], int, dict[str, Any]], Example]
ADAPTERS: dict[str, Adapter] = {}


def adapter(name: str) -> Callable[[Adapter], Adapter]:
    def register(function: Adapter) -> Adapter:
        ADAPTERS[name] = function
        return function

    return register


def _text(row: dict[str, Any], key: str) -> str:
    value = row[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"field {key!r} must be a non-empty string, got {value!r}")
    return value


def _choice_list(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(item, str) for item in value):
        raise ValueError(f"field {key!r} must be a list of at least two strings, got {value!r}")
    return list(value)


def _answer_index(value: Any, count: int) -> int:
    if isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS:
        index = LETTERS.index(value.strip().upper())
    else:
        index = int(value)
    if not 0 <= index < count:
        raise ValueError(f"answer index {value!r} is outside the {count} choices")
    return index


def multiple_choice(
    source_id: str, fields: dict[str, Any], choices: list[str], answer: int, **extra: Any
) -> Example:
    """An Example for a multiple-choice row; `options` renders the lettered choices for templates."""
    options = "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(choices))
    fields = {**fields, "choices": choices, "options": options, "answer_letter": LETTERS[answer]}
    return Example(
        source_id=source_id,
        fields=fields,
        reference=LETTERS[answer],
        target=answer,
        choices=choices,
        **extra,
    )


@adapter("columns")
def columns(row: dict[str, Any], index: int, options: dict[str, Any]) -> Example:
    """A user's file: `input`/`target` columns (names configurable), optional `id`, `category`, `choices`."""
    id_column = options.get("id_column", "id")
    input_column = options.get("input_column", "input")
    target_column = options.get("target_column", "target")
    category_column = options.get("category_column", "category")
    source_id = str(row[id_column]) if row.get(id_column) is not None else str(index)
    fields = {**row, "input": _text(row, input_column)}
    category = row.get(category_column)
    category = str(category) if category is not None else None
    choices_column = options.get("choices_column")
    if choices_column:
        choices = _choice_list(row[choices_column], choices_column)
        return multiple_choice(
            source_id, fields, choices, _answer_index(row[target_column], len(choices)), category=category
        )
    target = row[target_column]
    if target is None or (isinstance(target, str) and not target.strip()):
        raise ValueError(f"field {target_column!r} is empty")
    reference = target if isinstance(target, str) else json.dumps(target)
    return Example(
        source_id=source_id, fields=fields, reference=reference, target=reference, category=category
    )


_CALCULATOR = re.compile(r"<<[^>]*>>")


@adapter("gsm8k")
def gsm8k(row: dict[str, Any], index: int, options: dict[str, Any]) -> Example:
    """GSM8K: the gold is the number after `####`; the solution (calculator tags removed) serves few-shot."""
    solution = _CALCULATOR.sub("", _text(row, "answer"))
    if "####" not in solution:
        raise ValueError("answer has no '#### <number>' final line")
    number = extract_number(solution)
    if number is None:
        raise ValueError("no number after '####'")
    reference = str(number)
    fields = {"question": _text(row, "question"), "solution": solution, "reference": reference}
    return Example(source_id=str(index), fields=fields, reference=reference, target=reference)


@adapter("mmlu")
def mmlu(row: dict[str, Any], index: int, options: dict[str, Any]) -> Example:
    choices = _choice_list(row["choices"], "choices")
    subject = _text(row, "subject")
    fields = {"question": _text(row, "question"), "subject": subject.replace("_", " ")}
    return multiple_choice(
        str(row["id"]), fields, choices, _answer_index(row["answer_index"], len(choices)), category=subject
    )


@adapter("arc")
def arc(row: dict[str, Any], index: int, options: dict[str, Any]) -> Example:
    choices = _choice_list(row["choices"], "choices")
    fields = {"question": _text(row, "question")}
    return multiple_choice(str(row["id"]), fields, choices, _answer_index(row["answer_index"], len(choices)))


_BRACKETED = re.compile(r"\[.*?\]")


def hellaswag_clean(text: str) -> str:
    """HellaSwag's WikiHow text cleaned as its authors' and lm-eval's preprocessing does: " [title]"
    becomes a full stop, other bracketed markup goes, double spaces become one."""
    text = text.strip().replace(" [title]", ". ")
    return _BRACKETED.sub("", text).replace("  ", " ")


@adapter("hellaswag")
def hellaswag(row: dict[str, Any], index: int, options: dict[str, Any]) -> Example:
    """HellaSwag; `query` (activity label: context) and the endings cleaned for log-likelihood scoring."""
    endings = [hellaswag_clean(ending) for ending in _choice_list(row["endings"], "endings")]
    activity = _text(row, "activity_label")
    context = _text(row, "ctx")
    query = hellaswag_clean(f"{activity}: {context}")
    fields = {"activity_label": activity, "ctx": context, "query": query}
    return multiple_choice(
        str(row["id"]), fields, endings, _answer_index(row["label"], len(endings)), category=activity
    )


@adapter("winogrande")
def winogrande(row: dict[str, Any], index: int, options: dict[str, Any]) -> Example:
    """WinoGrande: the sentence with `_` and its two options; `context_options`/`continuation` kept for
    partial scoring in the lm-eval-harness manner."""
    choices = [_text(row, "option1_reconstructed"), _text(row, "option2_reconstructed")]
    fields = {
        "sentence": _text(row, "sentence_reconstructed"),
        "context_options": _choice_list(row["context_options"], "context_options"),
        "continuation": _text(row, "continuation"),
    }
    return multiple_choice(str(row["id"]), fields, choices, _answer_index(row["gold"], 2))


@adapter("truthfulqa_mc")
def truthfulqa_mc(row: dict[str, Any], index: int, options: dict[str, Any]) -> Example:
    """TruthfulQA MC1/MC2 (`targets`: mc1_targets or mc2_targets). The file lists true answers first, so
    the choices are shuffled with a per-question seed; target = the truth flag of each shown choice."""
    targets = row[options.get("targets", "mc1_targets")]
    if not isinstance(targets, dict) or len(targets) < 2 or not any(targets.values()):
        raise ValueError("targets must map at least two answers to 0/1 with one true answer")
    answers = list(targets.items())
    random.Random(f"truthfulqa/{index}").shuffle(answers)
    choices = [answer for answer, _ in answers]
    truth = [bool(flag) for _, flag in answers]
    fields = {"question": _text(row, "question")}
    example = multiple_choice(str(index), fields, choices, truth.index(True))
    return example.model_copy(update={"target": truth})


@adapter("truthfulqa_generation")
def truthfulqa_generation(row: dict[str, Any], index: int, options: dict[str, Any]) -> Example:
    correct = [answer for answer in row["correct_answers"] if answer]
    incorrect = [answer for answer in row["incorrect_answers"] if answer]
    if not correct or not incorrect:
        raise ValueError("needs correct and incorrect answers")
    fields = {"question": _text(row, "question")}
    target = {"correct": correct, "incorrect": incorrect}
    return Example(
        source_id=str(row["id"]),
        fields=fields,
        reference=_text(row, "best_answer"),
        target=target,
        category=row.get("category"),
    )


@adapter("humaneval")
def humaneval(row: dict[str, Any], index: int, options: dict[str, Any]) -> Example:
    fields = {"prompt": _text(row, "prompt"), "entry_point": _text(row, "entry_point")}
    target = {
        "kind": "humaneval",
        "prompt": row["prompt"],
        "test": _text(row, "test"),
        "entry_point": row["entry_point"],
    }
    return Example(
        source_id=_text(row, "task_id").split("/")[-1],
        fields=fields,
        reference=_text(row, "canonical_solution"),
        target=target,
    )


@adapter("mbpp")
def mbpp(row: dict[str, Any], index: int, options: dict[str, Any]) -> Example:
    """MBPP full or sanitized; `task_ids: [first, last]` picks the split (11-510 is the test split)."""
    task_id = int(row["task_id"])
    first, last = options.get("task_ids", [1, 10**9])
    if not first <= task_id <= last:
        raise Excluded
    tests = [test for test in row["test_list"] if isinstance(test, str)]
    if not tests:
        raise ValueError("test_list is empty")
    text = row.get("text") or row.get("prompt")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("no task text (`text` or `prompt`)")
    code = _text(row, "code").replace("\r\n", "\n")
    target = {
        "kind": "mbpp",
        "tests": tests + list(row.get("challenge_test_list") or []),
        "setup": row.get("test_setup_code") or "",
        "imports": list(row.get("test_imports") or []),
    }
    fields = {"text": text.strip(), "tests": "\n".join(tests), "code": code}
    return Example(source_id=str(task_id), fields=fields, reference=code, target=target)


@functools.cache
def _reference_answers(path: str) -> dict[int, list[str]]:
    answers: dict[int, list[str]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        answers[int(row["question_id"])] = list(row["choices"][0]["turns"])
    return answers


@adapter("mt_bench")
def mt_bench(row: dict[str, Any], index: int, options: dict[str, Any]) -> Example:
    """MT-Bench: two user turns; the reference answer (GPT-4's file, else the inline one) for the
    categories FastChat judges with a reference (math, reasoning, coding)."""
    turns = [turn for turn in row["turns"] if isinstance(turn, str) and turn.strip()]
    if not turns:
        raise ValueError("turns is empty")
    category = _text(row, "category")
    question_id = int(row["question_id"])
    reference: list[str] | None = None
    if category in options.get("reference_categories", ["math", "reasoning", "coding"]):
        answers_path = options.get("reference_answers")
        if answers_path:
            reference = _reference_answers(str(shared_data_root() / answers_path)).get(question_id)
        reference = reference or row.get("reference")
    fields = {"question": turns[0], "turns": turns}
    return Example(
        source_id=str(question_id),
        fields=fields,
        reference=reference[0] if reference else "",
        target={"category": category, "reference": reference},
        category=category,
        turns=turns,
    )


@adapter("xsum")
def xsum(row: dict[str, Any], index: int, options: dict[str, Any]) -> Example:
    fields = {"document": _text(row, "document")}
    summary = _text(row, "summary")
    return Example(source_id=str(row["id"]), fields=fields, reference=summary, target=summary)


LANGUAGE_NAMES = {
    "cs": "Czech", "de": "German", "en": "English", "fr": "French", "hr": "Croatian", "ja": "Japanese",
    "liv": "Livonian", "ru": "Russian", "sah": "Yakut", "uk": "Ukrainian", "zh": "Chinese",
}  # fmt: skip


@adapter("wmt22")
def wmt22(row: dict[str, Any], index: int, options: dict[str, Any]) -> Example:
    """A WMT22 segment; the gold is reference `reference` (default A, the one official BLEU-A uses)."""
    references = row["references"]
    letter = options.get("reference", next(iter(references)))
    reference = references[letter]
    if not isinstance(reference, str) or not reference.strip():
        raise ValueError(f"reference {letter!r} is empty")
    source_lang, target_lang = _text(row, "src_lang"), _text(row, "tgt_lang")
    fields = {
        "source": _text(row, "source"),
        "source_language": LANGUAGE_NAMES.get(source_lang, source_lang),
        "target_language": LANGUAGE_NAMES.get(target_lang, target_lang),
    }
    return Example(source_id=str(row["id"]), fields=fields, reference=reference, target=reference)
