"""The shared `routing/alpacaeval` folder: per-instruction judge preferences against a baseline model.

One annotator at a time (AE1 and AE2 use different judges and baselines and must not be mixed): quality is
the judge's win probability against the baseline, rows without a judgment are dropped and counted, and
output tokens are cl100k_base counts of the output text, priced where the price table lists the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rankroute.data.errors import DataError
from rankroute.data.importers import formats
from rankroute.data.importers.base import LoadedData, json_cells, model_cards, read_parquet
from rankroute.data.importers.tokens import TOKENIZER, count_tokens
from rankroute.data.prices import PriceTable

FORMAT = formats.ALPACAEVAL
DEFAULT_ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
PROMPT_PREFIX = "alpacaeval/"


def load_alpacaeval(directory: Path, prices: PriceTable, annotator: str | None) -> LoadedData:
    annotator = annotator or DEFAULT_ANNOTATOR
    judgments_path = directory / "judgments.parquet"
    judgments = read_parquet(
        judgments_path,
        required=("prompt_id", "model", "annotator", "baseline_model", "preference", "win_prob"),
    )
    judgments = judgments[judgments["annotator"] == annotator]
    if judgments.empty:
        known = sorted(read_parquet(judgments_path, columns=["annotator"])["annotator"].unique())
        raise DataError(
            f"no judgments by annotator {annotator!r}; annotators present: {', '.join(known)}",
            source=str(judgments_path),
            column="annotator",
            hint="pass one of them with --annotator",
        )
    judged = judgments["win_prob"].notna()
    judgments = judgments[judged]
    prompts_in = read_parquet(directory / "prompts.parquet", required=("prompt_id", "instruction", "dataset"))
    prompts = pd.DataFrame(
        {
            "prompt_id": PROMPT_PREFIX + prompts_in["prompt_id"].astype(str),
            "text": prompts_in["instruction"],
            "dataset": "alpacaeval",
            "category": prompts_in["dataset"],
        }
    )
    models = sorted(judgments["model"].astype(str).unique())
    outputs = read_parquet(
        directory / "outputs.parquet",
        columns=["prompt_id", "model", "output"],
        filters=[("model", "in", models)],
    )
    rows = judgments.merge(outputs, on=["prompt_id", "model"], how="left")
    prompt_ids = PROMPT_PREFIX + rows["prompt_id"].astype(str)
    input_tokens = prompt_ids.map(
        pd.Series(count_tokens(list(prompts["text"])), index=prompts["prompt_id"].to_numpy())
    )
    output_tokens = pd.Series(count_tokens(list(rows["output"])), index=rows.index)
    cost = pd.Series(np.nan, index=rows.index)
    for model, index in rows.groupby("model").groups.items():
        entry = prices.find(str(model))
        if entry is not None and entry.input_per_m is not None and entry.output_per_m is not None:
            cost[index] = (
                input_tokens[index] * entry.input_per_m + output_tokens[index] * entry.output_per_m
            ) / 1e6
    outcomes = pd.DataFrame(
        {
            "prompt_id": prompt_ids,
            "model": rows["model"],
            "quality": rows["win_prob"],
            "raw_score": rows["preference"],
            "metric": f"alpacaeval:{annotator}",
            "cost_usd": cost,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "response": rows["output"],
            "extra": json_cells(
                {"baseline": b, "tokenizer": TOKENIZER}
                | ({"cost_estimated": True, "price_table": prices.source} if not np.isnan(c) else {})
                for b, c in zip(rows["baseline_model"], cost, strict=True)
            ),
        }
    )
    return LoadedData.validated(
        prompts,
        outcomes,
        model_cards(models, prices),
        source=str(directory),
        format=FORMAT,
        dropped={"judgments without a win probability": int((~judged).sum())},
    )
