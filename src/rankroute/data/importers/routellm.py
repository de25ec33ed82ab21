"""The shared `routing/routellm-gpt4-mixtral` folder: RouteLLM's GPT-4 vs Mixtral outcomes, priced here.

The source has no cost, so each outcome is priced with the price table: input tokens are the prompt text's
cl100k_base count; output tokens are counted on the response where one exists (GSM8K). Where none exists
the output length is an assumption, kept in `extra` and marked: one token for MMLU (the prompt ends in
"Answer:" and the answer is a letter), and `ASSUMED_OUTPUT_TOKENS["mt_bench"]` for an MT-Bench question
(two answers of about 300 tokens, the length of typical GPT-4 MT-Bench answers), and
`FALLBACK_OUTPUT_TOKENS` for a dataset this folder does not have yet. MT-Bench's two turns become
one outcome per question and model: quality = mean of the turns' grade/10, raw_score = mean grade.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rankroute.data.importers import formats
from rankroute.data.importers.base import LoadedData, json_cells, model_cards, prompt_columns, read_parquet
from rankroute.data.importers.tokens import TOKENIZER, count_tokens
from rankroute.data.prices import PriceTable

FORMAT = formats.ROUTELLM
MT_BENCH_METRIC = "gpt4_single_grade_1to10"
ASSUMED_OUTPUT_TOKENS: dict[str, int] = {"mmlu": 1, "mt_bench": 600}
FALLBACK_OUTPUT_TOKENS = 300


def load_routellm(directory: Path, prices: PriceTable) -> LoadedData:
    prompts_in = read_parquet(
        directory / "prompts.parquet",
        required=("prompt_id", "dataset", "subset", "prompt_text", "prompt_turns", "contaminated"),
    )
    outcomes_in = read_parquet(
        directory / "outcomes.parquet",
        required=("prompt_id", "model", "turn", "quality", "raw_score", "metric", "response"),
    )
    token_prices = {str(m): prices.token_prices(str(m)) for m in outcomes_in["model"].unique()}  # fail fast
    prompts = pd.DataFrame(
        {
            **prompt_columns(prompts_in),
            "category": prompts_in["subset"],
            "metadata": json_cells({"contaminated": bool(c)} for c in prompts_in["contaminated"]),
        }
    )
    outcomes = _one_row_per_question(outcomes_in)
    by_prompt = prompts.set_index("prompt_id")
    dataset = outcomes["prompt_id"].map(by_prompt["dataset"]).astype(str)
    input_tokens = outcomes["prompt_id"].map(
        pd.Series(count_tokens(list(by_prompt["text"])), index=by_prompt.index)
    )
    output_tokens = pd.Series(count_tokens(list(outcomes["response"])), index=outcomes.index)
    assumed = dataset.map(lambda d: ASSUMED_OUTPUT_TOKENS.get(d, FALLBACK_OUTPUT_TOKENS)).astype("float64")
    priced_output = output_tokens.fillna(assumed)
    cost = pd.Series(np.nan, index=outcomes.index)
    for model, rows in outcomes.groupby("model").groups.items():
        input_per_m, output_per_m = token_prices[str(model)]
        cost[rows] = (input_tokens[rows] * input_per_m + priced_output[rows] * output_per_m) / 1e6
    outcomes = outcomes.assign(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost,
        extra=json_cells(
            {"cost_estimated": True, "tokenizer": TOKENIZER, "price_table": prices.source}
            | ({"assumed_output_tokens": int(a)} if np.isnan(o) else {})
            | ({"turns": int(n)} if n > 1 else {})
            for a, o, n in zip(assumed, output_tokens, outcomes["n_turns"], strict=True)
        ),
    ).drop(columns=["n_turns"])
    return LoadedData.validated(
        prompts,
        outcomes,
        model_cards(outcomes["model"].astype(str), prices),
        source=str(directory),
        format=FORMAT,
    )


def _one_row_per_question(outcomes: pd.DataFrame) -> pd.DataFrame:
    """MT-Bench rows (one per turn) averaged into one per (question, model); other rows unchanged."""
    per_turn = outcomes["turn"].notna()
    single = outcomes[~per_turn].drop(columns=["turn"]).assign(n_turns=1)
    turns = outcomes[per_turn]
    merged = (
        turns.groupby(["prompt_id", "model", "metric"], as_index=False)
        .agg(quality=("quality", "mean"), raw_score=("raw_score", "mean"), n_turns=("turn", "size"))
        .assign(response=None)
    )
    return pd.concat([single, merged], ignore_index=True)
