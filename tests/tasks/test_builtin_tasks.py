"""Every built-in task loads the real shared data with the right size, and scores gold answers 1, wrong 0."""

from __future__ import annotations

import json
import math

import pytest
from task_cache import task_named

from rankroute.evaluate.tasks import TaskInstance, get_task, list_tasks
from shared_data import shared_path

EXPECTED_ROWS = {
    "gsm8k": 1319,
    "mmlu": 14042,
    "arc_challenge": 1172,
    "hellaswag": 10042,
    "winogrande": 1267,
    "truthfulqa_mc1": 817,
    "truthfulqa_mc2": 817,
    "truthfulqa_gen": 817,
    "humaneval": 164,
    "mbpp": 500,
    "mbpp_sanitized": 257,
    "mt_bench": 80,
    "xsum": 999,  # 1,000 rows, one with an empty document: skipped and reported
    "wmt22": 2037,
    "wmt22_zh-en": 1875,
}


def first(name: str) -> TaskInstance:
    return task_named(name).instances(limit=3, seed=0)[0]


def test_every_builtin_is_listed() -> None:
    assert set(EXPECTED_ROWS) <= set(list_tasks())
    assert sum(name.startswith("wmt22_") for name in list_tasks()) == 21


@pytest.mark.parametrize(("name", "rows"), sorted(EXPECTED_ROWS.items()))
def test_builtin_loads_every_row_and_makes_well_formed_instances(name: str, rows: int) -> None:
    task = task_named(name)
    assert len(task.examples) == rows
    instances = task.instances(limit=4, seed=7)
    assert len(instances) == 4
    ids = [instance.prompt.prompt_id for instance in instances]
    assert len(set(ids)) == 4 and all(pid.startswith(f"{name}/") for pid in ids)
    for instance in instances:
        assert instance.prompt.dataset == name
        assert instance.prompt.reference or task.kind == "judge"  # MT-Bench: references for 3 categories only
        assert (
            instance.messages[-1]["role"] == "user"
            and instance.messages[-1]["content"] == instance.prompt.text
        )
        assert instance.completion_prompt.endswith(
            instance.prompt.text if task.spec.completion_template is None else ""
        )
        if task.kind == "multiple_choice":
            assert instance.choices and len(instance.choices) == len(instance.target["choices"])
        else:
            assert instance.choices is None


def test_xsum_reports_the_row_it_skipped() -> None:
    task = task_named("xsum")
    assert [(row.row, "document" in row.reason) for row in task.skipped] == [(219, True)]


def test_samples_are_seeded_and_stable() -> None:
    task = task_named("arc_challenge")
    ids = [i.prompt.prompt_id for i in task.instances(limit=20, seed=3)]
    assert ids == [i.prompt.prompt_id for i in get_task("arc_challenge").instances(limit=20, seed=3)]
    assert ids != [i.prompt.prompt_id for i in task.instances(limit=20, seed=4)]
    assert ids == sorted(ids, key=lambda pid: int(pid.split("/")[1]))  # file order kept


def test_stratified_sample_covers_every_mmlu_subject() -> None:
    task = task_named("mmlu")
    sample = task.instances(limit=285, seed=0)
    assert len(sample) == 285
    assert len({instance.prompt.category for instance in sample}) == 57
    unstratified = task.instances(limit=285, seed=0, stratify=False)
    assert [i.prompt.prompt_id for i in unstratified] != [i.prompt.prompt_id for i in sample]


def test_mmlu_is_five_shot_from_the_same_subjects_dev_split() -> None:
    instance = first("mmlu")
    assert [m["role"] for m in instance.messages] == ["system"] + ["user", "assistant"] * 5 + ["user"]
    subject = instance.prompt.category.replace("_", " ")  # type: ignore[union-attr]
    description = f"The following are multiple choice questions (with answers) about {subject}."
    assert instance.messages[0]["content"] == description
    assert all(m["content"] in "ABCD" for m in instance.messages if m["role"] == "assistant")
    # log-likelihood as lm-eval's mmlu: the description once, five solved shots, then " A".." D"
    context = (instance.choice_contexts or [""])[0]
    assert context.startswith(description + "\n\n") and context.count("Answer:") == 6
    assert context.endswith("\nD. " + instance.target["choices"][3] + "\nAnswer:")
    assert instance.choices == [" A", " B", " C", " D"]
    assert first("mmlu").messages == instance.messages  # the same shots on every run


def test_mbpp_is_three_shot_from_the_prompt_split() -> None:
    instance = first("mbpp")
    shots = [m["content"] for m in instance.messages if m["role"] == "assistant"]
    assert len(shots) == 3 and all(s.startswith("[BEGIN]") and s.endswith("[DONE]") for s in shots)


def _letter(instance: TaskInstance) -> str:
    return "ABCDEFGH"[
        instance.target["answer"]
        if isinstance(instance.target["answer"], int)
        else instance.target["answer"].index(True)
    ]


@pytest.mark.parametrize("name", ["mmlu", "arc_challenge", "hellaswag", "winogrande", "truthfulqa_mc1"])
def test_multiple_choice_gold_scores_one_and_wrong_zero(name: str) -> None:
    task = task_named(name)
    for instance in task.instances(limit=5, seed=1):
        gold = _letter(instance)
        wrong = next(letter for letter in "AB" if letter != gold)
        assert task.score(instance, gold).quality == 1.0
        assert task.score(instance, f"The answer is {gold}.").quality == 1.0
        assert task.score(instance, wrong).quality == 0.0
        assert task.score(instance, "I do not know").quality == 0.0
        count = len(instance.choices or [])
        gold_index = "ABCDEFGH".index(gold)
        logliks = [-1.0 if i == gold_index else -5.0 for i in range(count)]
        assert task.score_choices(instance, logliks).quality == 1.0
        logliks = [-5.0 if i == gold_index else -1.0 - i for i in range(count)]
        assert task.score_choices(instance, logliks).quality == 0.0


def test_multiple_choice_accepts_the_option_text_as_an_answer() -> None:
    task = task_named("arc_challenge")
    instance = first("arc_challenge")
    gold_text = instance.target["choices"][instance.target["answer"]]
    assert task.score(instance, gold_text).quality == 1.0


def test_truthfulqa_mc2_is_the_probability_mass_on_true_answers() -> None:
    task = task_named("truthfulqa_mc2")
    instance = first("truthfulqa_mc2")
    truth = instance.target["answer"]
    logliks = [
        math.log(0.9 / sum(truth)) if flag else math.log(0.1 / (len(truth) - sum(truth))) for flag in truth
    ]
    assert task.score_choices(instance, logliks).quality == pytest.approx(0.9)
    assert task.score(instance, _letter(instance)).quality == 1.0
    false_letter = "ABCDEFGHIJKLMNOP"[truth.index(False)]
    assert task.score(instance, false_letter).quality == 0.0


def test_gsm8k_scores_the_final_number() -> None:
    task = task_named("gsm8k")
    instance = task.instances()[0]  # Janet's ducks: 18
    assert instance.prompt.reference == "18"
    assert task.score(instance, "16 - 3 - 4 = 9 eggs, 9 * $2 = $18.\n#### 18").quality == 1.0
    assert task.score(instance, "She makes $18 every day.").quality == 1.0
    assert task.score(instance, "#### 16").quality == 0.0


def test_truthfulqa_generation_prefers_true_answers() -> None:
    task = task_named("truthfulqa_gen")
    instance = task.instances()[0]  # watermelon seeds
    assert task.score(instance, "The watermelon seeds pass through your digestive system").quality == 1.0
    assert task.score(instance, "You grow watermelons in your stomach").quality == 0.0


def test_xsum_scores_rouge() -> None:
    task = task_named("xsum")
    instance = first("xsum")
    gold = task.score(instance, instance.prompt.reference or "")
    assert gold.quality == pytest.approx(1.0) and gold.extra["rouge1"] == pytest.approx(1.0)
    assert task.score(instance, "zzzz qqqq").quality == 0.0
    summary = task.aggregate([gold, task.score(instance, "zzzz qqqq")])
    assert summary["rouge1"] == pytest.approx(0.5) and summary["n"] == 2


def test_wmt22_scores_chrf_per_segment_and_bleu_per_corpus() -> None:
    task = task_named("wmt22_zh-en")
    instances = task.instances(limit=20, seed=0)
    gold = [task.score(instance, instance.prompt.reference or "") for instance in instances]
    assert all(score.quality == pytest.approx(1.0) for score in gold)
    assert task.aggregate(gold)["bleu"] == pytest.approx(100.0)
    wrong = task.score(instances[0], "@@@@")
    assert wrong.quality == 0.0


def test_humaneval_runs_the_tests_in_the_sandbox() -> None:
    task = task_named("humaneval")
    instance = task.instances()[0]
    canonical = instance.prompt.reference or ""
    assert task.score(instance, canonical).quality == 1.0  # a raw completion of the prompt
    full = "```python\n" + instance.target["prompt"] + canonical + "```"
    assert task.score(instance, "Here it is:\n" + full).quality == 1.0  # the whole function in a block
    wrong = task.score(instance, "    return False\n")
    assert wrong.quality == 0.0 and wrong.extra["status"] == "failed"


def test_mbpp_runs_the_tests_in_the_sandbox() -> None:
    task = task_named("mbpp")
    instance = first("mbpp")
    assert task.score(instance, f"[BEGIN]\n{instance.prompt.reference}\n[DONE]").quality == 1.0
    assert task.score(instance, "def nothing():\n    pass\n").extra["status"] in {"error", "failed"}


def test_code_aggregate_reports_pass_at_k_over_samples() -> None:
    task = task_named("humaneval")
    instance = task.instances()[0]
    right, wrong = (
        task.score(instance, instance.prompt.reference or ""),
        task.score(instance, "    return 0\n"),
    )
    summary = task.aggregate([right, wrong, wrong, wrong])  # 4 samples of one problem, 1 passed
    assert summary["pass@1"] == pytest.approx(0.25)
    assert "pass@10" not in summary  # not enough samples


def test_mt_bench_builds_fastchat_judge_prompts_and_reads_ratings() -> None:
    task = task_named("mt_bench")
    by_category = {i.prompt.category: i for i in task.instances()}
    writing, math_question = by_category["writing"], by_category["math"]
    assert writing.prompt.turns and len(writing.prompt.turns) == 2
    messages = task.judge_messages(writing, ["A lovely post about Hawaii."])
    assert messages is not None and "A lovely post about Hawaii." in messages[-1]["content"]
    assert writing.prompt.turns[0] in messages[-1]["content"] and "[[rating]]" in messages[-1]["content"]
    guided = task.judge_messages(math_question, ["x = 3"])
    assert guided is not None and "[The Start of Reference Answer]" in guided[-1]["content"]
    both = task.judge_messages(writing, ["first answer", "second answer"])
    assert (
        both is not None
        and "second answer" in both[-1]["content"]
        and writing.prompt.turns[1] in both[-1]["content"]
    )
    assert task.score_judgement(writing, "Solid answer. Rating: [[10]]").quality == 1.0
    assert task.score_judgement(writing, "Rating: [[1]]").quality == 0.0
    unparsed = task.score_judgement(writing, "I refuse to rate.")
    assert unparsed.quality == 0.0 and unparsed.extra["judge_parse_error"] is True
    assert task_named("gsm8k").judge_messages(first("gsm8k"), ["18"]) is None


@pytest.mark.parametrize(
    "model", ["6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"]
)
def test_gsm8k_grading_agrees_with_openais_labels_on_real_model_solutions(model: str) -> None:
    """OpenAI graded 1,319 GPT-3 solutions per model (example_model_solutions.jsonl); ours must agree."""
    path = shared_path("benchmarks", "gsm8k", "example_model_solutions.jsonl")
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    task = task_named("gsm8k")
    assert [row["question"] for row in rows] == [example.fields["question"] for example in task.examples]
    ours = [
        task.score(instance, row[model]["solution"]).quality
        for instance, row in zip(task.instances(), rows, strict=True)
    ]
    assert ours == [float(row[model]["is_correct"]) for row in rows]
