"""A small real task for runner tests: integer sums, scored by exact match of the first number answered.

It implements the task interface the runner calls (instances / score, kind 'generate'), so runner tests do
not depend on dataset files; `register()` makes it resolvable by name as `arith`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from rankroute.data import DataError, Prompt


@dataclass
class ArithScore:
    quality: float
    raw_score: float | None
    metric: str = "exact_match"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ArithInstance:
    prompt: Prompt
    messages: list[dict[str, str]]
    completion_prompt: str
    target: str
    choices: list[str] | None = None


class ArithTask:
    name = "arith"
    kind = "generate"
    version = 1

    def __init__(self, size: int = 200) -> None:
        self.size = size

    def instances(
        self, limit: int | None = None, seed: int = 0, stratify: str | None = None
    ) -> list[ArithInstance]:
        if stratify is not None and stratify != "dataset":
            raise DataError(f"task arith cannot stratify on {stratify!r}", hint="use stratify: dataset")
        order = list(range(self.size))
        random.Random(seed).shuffle(order)
        out = []
        for i in order[: limit or self.size]:
            a, b = 3 * i + 2, 7 * i + 5
            question = f"What is {a} + {b}? Reply with the number only."
            out.append(
                ArithInstance(
                    prompt=Prompt(
                        prompt_id=f"arith-{i}", text=question, dataset="arith", reference=str(a + b)
                    ),
                    messages=[{"role": "user", "content": question}],
                    completion_prompt=question + "\nAnswer:",
                    target=str(a + b),
                )
            )
        return out

    def decoding(self, params: Any) -> Any:
        """The run's decoding as it is: arith sets no stop sequences or budget of its own."""
        return params

    def score(self, instance: ArithInstance, output: str) -> ArithScore:
        numbers = re.findall(r"-?\d+", output.replace(",", ""))
        if not numbers:
            return ArithScore(0.0, None, extra={"parsed": None})
        right = numbers[-1] == instance.target
        return ArithScore(float(right), float(right), extra={"parsed": numbers[-1]})


def sum_answerer(prompt: str) -> str:
    """What the test server answers: the right sum when the first number is even, else a wrong one."""
    found = re.search(r"What is (\d+) \+ (\d+)", prompt)
    if not found:
        return "I do not know"
    a, b = int(found.group(1)), int(found.group(2))
    return f"The answer is {a + b if a % 2 == 0 else a + b + 1}"


def with_arith(real_get: Any) -> Any:
    """A get_task that also knows `arith`, falling back to the real registry for every other name."""

    def get_task(name: str) -> Any:
        if name == "arith":
            return ArithTask()
        if real_get is None:
            raise DataError(f"unknown task {name!r}", hint="known: ['arith']")
        return real_get(name)

    return get_task


def register() -> None:
    """Make `arith` resolvable in this process (for CLI subprocesses; in-process tests use monkeypatch)."""
    from rankroute.evaluate import tasks

    tasks.get_task = with_arith(getattr(tasks, "get_task", None))  # type: ignore[attr-defined]
