"""Multiple choice as lm-evaluation-harness scores it (option text, acc / acc_norm, WinoGrande's partial
scoring, letters for MMLU), GSM8K's final-answer extraction on real model answers, and the task version
that keeps outcomes of an older task definition from being reused."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from task_cache import task_named

from rankroute.backends import BackendConfig, DecodingParams
from rankroute.evaluate.runner import outcome_config_key
from rankroute.evaluate.tasks import Task, TaskInstance, TaskSpec
from rankroute.evaluate.tasks.adapters import hellaswag_clean
from rankroute.evaluate.tasks.task import extract_final_number
from shared_data import shared_path


def test_arc_scores_the_option_text_after_answer() -> None:
    task = task_named("arc_challenge")
    instance = task.instances(limit=5, seed=0)[0]
    question = instance.prompt.text.split("\n")[0].removeprefix("Question: ")
    assert instance.choice_contexts == [f"Question: {question}\nAnswer:"] * 4
    assert instance.choices == [f" {text}" for text in instance.target["choices"]]
    # generated answers still see the lettered options
    assert "\nA. " in instance.messages[-1]["content"] and "\nD. " in instance.messages[-1]["content"]


def test_arc_gold_matches_the_file_for_the_demo_sample() -> None:
    """The demo's 100 ARC questions (seed 0): every stored gold index and text is the file's answer."""
    rows = {
        row["id"]: row
        for row in map(
            json.loads, shared_path("benchmarks", "arc_challenge", "arc_challenge_test.jsonl").open()
        )
    }
    for instance in task_named("arc_challenge").instances(limit=100, seed=0):
        row = rows[int(instance.prompt.metadata["source_id"])]
        gold = instance.target["answer"]
        assert "ABCD"[gold] == row["answer"] and instance.prompt.reference == row["answer"]
        assert instance.target["choices"][gold] == row["choices"][row["answer_index"]]


def test_always_first_option_scores_the_share_of_a_answers_in_the_sample() -> None:
    """Last session's SmolLM2 picked "A" on all 100 demo questions and scored 0.12; that is exactly the
    share of gold "A" in that seeded sample (12 of 100, against 22 % in the whole test set), so the 0.12
    was right and no letter/gold off-by-one exists."""
    task = task_named("arc_challenge")
    instances = task.instances(limit=100, seed=0)
    golds = Counter(instance.target["answer"] for instance in instances)
    assert golds[0] == 12
    always_first = [task.score_choices(i, [0.0, -50.0, -50.0, -50.0]) for i in instances]
    assert sum(score.quality for score in always_first) == 12
    assert all(score.extra["choice"] == 0 for score in always_first)
    whole = Counter(example.target for example in task.examples)
    assert round(whole[0] / len(task.examples), 2) == 0.22


def test_acc_norm_divides_by_the_options_bytes() -> None:
    """acc picks the most likely option (a short wrong one here); acc_norm the most likely per byte (the
    long gold one), on a real question whose gold option is at least twice as long as another."""
    task = task_named("arc_challenge")

    def lengths_of(instance: TaskInstance) -> list[int]:
        return [len(text.encode()) for text in instance.target["choices"]]

    instance = next(
        i
        for i in task.instances(limit=100, seed=0)
        if lengths_of(i)[i.target["answer"]] >= 2 * min(lengths_of(i))
    )
    gold, lengths = instance.target["answer"], lengths_of(instance)
    logliks = [-1.0 * n for n in lengths]  # every option at -1 per byte ...
    logliks[gold] = -0.6 * lengths[gold]  # ... the gold one at -0.6 per byte, yet lowest in total
    shortest = min(range(4), key=lambda i: lengths[i])
    score = task.score_choices(instance, logliks)
    assert score.metric == "acc_norm" and score.quality == 1.0 and score.extra["choice"] == gold
    assert score.extra["choice_acc"] == shortest != gold and score.extra["acc"] == 0.0
    assert task.aggregate([score]) | {"acc": 0.0, "acc_norm": 1.0} == task.aggregate([score])


@given(st.lists(st.floats(min_value=-200, max_value=-0.01), min_size=4, max_size=4))
def test_acc_and_acc_norm_are_the_argmax_of_raw_and_per_byte_log_likelihood(logliks: list[float]) -> None:
    task = task_named("arc_challenge")
    instance = task.instances(limit=5, seed=0)[1]
    lengths = [len(text.encode()) for text in instance.target["choices"]]
    extra = task.score_choices(instance, logliks).extra
    assert logliks[extra["choice_acc"]] == max(logliks)
    per_byte = [value / n for value, n in zip(logliks, lengths, strict=True)]
    assert per_byte[extra["choice_acc_norm"]] == max(per_byte)


def test_mmlu_keeps_letter_scoring_where_lm_eval_uses_letters() -> None:
    task = task_named("mmlu")
    instance = task.instances(limit=3, seed=0)[0]
    assert instance.choices == [" A", " B", " C", " D"]
    score = task.score_choices(instance, [-1.0 if i == instance.target["answer"] else -3.0 for i in range(4)])
    assert score.metric == "accuracy" and score.extra["acc"] == score.extra["acc_norm"] == 1.0


def test_winogrande_partial_scoring_fills_the_blank_and_scores_the_rest() -> None:
    task = task_named("winogrande")
    instance = task.instances()[
        0
    ]  # "Sarah was a much better surgeon than Maria so _ always got the easier cases."
    assert instance.choice_contexts == [
        "Sarah was a much better surgeon than Maria so Sarah",
        "Sarah was a much better surgeon than Maria so Maria",
    ]
    assert instance.choices == [" always got the easier cases."] * 2
    assert task.score_choices(instance, [-9.0, -4.0]).quality == 1.0  # gold: Maria


def test_hellaswag_context_and_endings_are_cleaned_as_lm_eval_does() -> None:
    assert hellaswag_clean("Personal Care: [header] How to relax. [title] Breathe.  Slowly") == (
        "Personal Care: How to relax.. Breathe. Slowly"
    )
    task = task_named("hellaswag")
    instance = task.instances(limit=20, seed=3)[0]
    context = (instance.choice_contexts or [""])[0]
    assert context.startswith(instance.prompt.category + ": ")  # type: ignore[operator]
    assert "[title]" not in context and all("[" not in choice for choice in instance.choices or [])


def test_truthfulqa_mc_follows_the_six_question_qa_prompt() -> None:
    instance = task_named("truthfulqa_mc1").instances(limit=3, seed=0)[0]
    context = (instance.choice_contexts or [""])[0]
    assert context.count("\nA: ") == 6 and context.endswith("\nA:")
    assert context.startswith("Q: What is human life expectancy in the United States?")


# GSM8K: answers as the demo's models gave them (runs/demo store of 2026-11-23), gold beside each
REAL_GSM8K_ANSWERS = [
    # Qwen2.5-Coder-0.5B under last session's prompt: no reasoning, a wrong number after "####"
    ("#### 100", "366", "100"),
    # SmolLM2 states its answer, then goes on with a made-up question: the stated answer counts
    (
        "Total downloads = 60 + 30 + 30 * 100 = 1200 downloads\n\nFinal answer: 1200\n\nQuestion: A new "
        "program had 1200 downloads in the first month, 30% of which",
        "366",
        "1200",
    ),
    (
        "Cody eats 15 + Amir eats 5 = 20 cookies.\n\nFinal Answer: 20 cookies Cody eats and 2 cookies Amir "
        "eats together is 2 * 2 = 4 cookies.\n\nSo, the answer is 4.",
        "20",
        "20",
    ),
    ("So she makes 9 * 2 = $18 every day.\nThe final answer is $18.", "18", "18"),
    ("The total is 1,200 + 34 = 1,234.\nThe final answer is: **1,234**", "1234", "1,234"),
    ("Therefore the answer is \\boxed{42}.", "42", "42"),
    ("She has 3 apples and buys 4 more, so 3 + 4 = 7", "7", "7"),
    ("I cannot solve this.", "5", ""),
]


@pytest.mark.parametrize(("response", "gold", "extracted"), REAL_GSM8K_ANSWERS)
def test_gsm8k_extracts_the_stated_final_answer(response: str, gold: str, extracted: str) -> None:
    assert extract_final_number(response) == extracted
    task = task_named("gsm8k")
    instance = task.instances()[0].model_copy(update={"target": gold})
    assert task.score(instance, response).quality == float(extracted.replace(",", "") == gold)


def test_gsm8k_asks_for_reasoning_in_chat_and_stops_at_a_new_problem() -> None:
    task = task_named("gsm8k")
    instance = task.instances(limit=1, seed=0)[0]
    assert [m["role"] for m in instance.messages] == ["user"]
    assert instance.messages[0]["content"].endswith(
        "\nPlease reason step by step, and put your final answer within \\boxed{}."
    )
    shot = Task(task.spec.model_copy(update={"fewshot": task.spec.fewshot.model_copy(update={"k": 1})}))
    solved = shot.instances(limit=1, seed=0)[0].messages[1]["content"]  # a few-shot answer ends the same way
    assert extract_final_number(solved) == solved.split("boxed{")[1].split("}")[0]
    params = task.decoding(DecodingParams(max_tokens=16))
    assert params.max_tokens == 384 and params.stop and "\nQuestion:" in params.stop


def test_changing_a_task_definition_changes_its_outcome_key() -> None:
    """Outcomes scored by the old letter format must not be resumed as if scored by option text."""
    arc = task_named("arc_challenge")
    letters = Task(arc.spec.model_copy(update={"choice_format": "letter"}))
    backend = BackendConfig(name="m", kind="local", local_model="smollm2-135m")
    params = DecodingParams()
    assert letters.version != arc.version
    assert outcome_config_key(letters, backend, params) != outcome_config_key(arc, backend, params)
    assert Task(TaskSpec.model_validate(arc.spec.model_dump())).version == arc.version


def test_few_shot_log_likelihood_context_shows_each_shots_gold_answer() -> None:
    """Shots end with their gold continuation: the option text (ARC), or TruthfulQA's first true answer."""
    for name in ("arc_challenge", "truthfulqa_mc1"):
        task = task_named(name)
        shot_task = Task(
            task.spec.model_copy(update={"fewshot": task.spec.fewshot.model_copy(update={"k": 1})})
        )
        instance = shot_task.instances(limit=1, seed=0)[0]
        shot = shot_task._shots(
            next(e for e in shot_task.examples if e.source_id == instance.prompt.metadata["source_id"])
        )[0]
        truth = shot.target.index(True) if isinstance(shot.target, list) else shot.target
        gold = (shot.choices or [])[truth]
        assert (
            f"Answer: {gold}\n\n" in (instance.choice_contexts or [""])[0]
            or f"A: {gold}\n\n" in (instance.choice_contexts or [""])[0]
        )
