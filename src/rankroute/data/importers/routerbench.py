"""RouterBench (Hu et al. 2024): its published wide table, and the shared `routerbench-subset` folder.

The wide table has one row per prompt: `sample_id`, `prompt` (a list of turns, or its Python-list literal in
CSV), `eval_name`, and for each model a score column `<model>`, `<model>|model_response` and
`<model>|total_cost`, plus `oracle_model_to_route_to`. Both readers give a prompt the id
`<sample_id>#<row index>` (RouterBench repeats 14 sample_ids), so the two imports of the same rows agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from rankroute.data.errors import DataError
from rankroute.data.importers import formats
from rankroute.data.importers.base import (
    LoadedData,
    json_cells,
    model_cards,
    prompt_columns,
    read_parquet,
    text_list,
)
from rankroute.data.importers.longform import SOURCE_ROW
from rankroute.data.prices import PriceTable

WIDE_FORMAT = formats.ROUTERBENCH_WIDE
SUBSET_FORMAT = formats.ROUTERBENCH_SUBSET
HUB_REPO = "withmartian/routerbench"
HUB_VARIANTS = ("0shot", "5shot")
WIDE_REQUIRED = ("sample_id", "prompt", "eval_name")
ORACLE = "oracle_model_to_route_to"
COST_SUFFIX = "|total_cost"
RESPONSE_SUFFIX = "|model_response"
TURN_SEPARATOR = "\n\n"
# RouterBench scores these tasks 0/1 (MBPP by its unit tests); other tasks keep RouterBench's own score.
EXACT_MATCH_TASKS = ("arc-challenge", "winogrande", "hellaswag", "mmlu", "gsm8k", "mbpp")


def metric_for(eval_name: str) -> str:
    return "exact_match" if eval_name.startswith(EXACT_MATCH_TASKS) else f"routerbench:{eval_name}"


def is_wide_table(columns: list[str]) -> bool:
    return "sample_id" in columns and any(str(c).endswith(COST_SUFFIX) for c in columns)


def load_routerbench_from_hub(variant: str = "0shot", cache_dir: str | Path | None = None) -> Path:
    """Download RouterBench's pickle from the Hugging Face hub (cached) and return its local path."""
    if variant not in HUB_VARIANTS:
        raise DataError(f"unknown RouterBench variant {variant!r}", hint=f"use one of {HUB_VARIANTS}")
    filename = f"routerbench_{variant}.pkl"
    from huggingface_hub import hf_hub_download

    try:
        local = hf_hub_download(repo_id=HUB_REPO, filename=filename, repo_type="dataset", cache_dir=cache_dir)
    except Exception as exc:  # any hub failure (offline, HTTP error, disk) means the same to the user
        raise DataError(
            f"cannot download {filename} from the Hugging Face hub ({type(exc).__name__}: {exc})",
            source=f"hf://datasets/{HUB_REPO}/{filename}",
            hint=f"download it where the hub is reachable, then: rankroute data import {filename}",
        ) from exc
    return Path(local)


def _read_wide(path: Path) -> pd.DataFrame:
    """The wide table, with `_row_index` (the table's own index: pickle index or CSV's unnamed column)."""
    if path.stat().st_size == 0:
        raise DataError("the file is empty", source=str(path))
    if path.suffix.lower() in (".pkl", ".pickle"):
        try:
            frame = pd.read_pickle(path)
        except Exception as exc:  # unpickling can fail in many ways; all mean "not a RouterBench pickle"
            raise DataError(f"cannot read pickle: {type(exc).__name__}: {exc}", source=str(path)) from exc
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"the pickle holds a {type(frame).__name__}, not a DataFrame", source=str(path))
        frame = frame.copy()
        frame["_row_index"] = frame.index.astype(str)
    else:
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read CSV: {exc}", source=str(path)) from exc
        index_column = "Unnamed: 0" if "Unnamed: 0" in frame.columns else None
        frame["_row_index"] = (
            frame[index_column].astype(str) if index_column else pd.Series(range(len(frame))).astype(str)
        )
    frame = frame.reset_index(drop=True)
    frame[SOURCE_ROW] = range(1, len(frame) + 1)
    return frame


def load_wide(path: Path, prices: PriceTable) -> LoadedData:
    source = str(path)
    frame = _read_wide(path)
    for column in WIDE_REQUIRED:
        if column not in frame.columns:
            raise DataError(
                f"missing required column {column!r} of RouterBench's wide table",
                source=source,
                column=column,
            )
        empty = frame[column].isna()
        if empty.any():
            row = int(frame.loc[empty, SOURCE_ROW].iloc[0])
            raise DataError(f"empty {column}", source=source, column=column, row=row)
    models = [c for c in frame.columns if f"{c}{COST_SUFFIX}" in frame.columns]
    if not models:
        raise DataError(
            "no model columns: expected '<model>' beside '<model>|total_cost'",
            source=source,
            column="<model>",
        )
    turns = [text_list(v) for v in frame["prompt"]]
    prompt_ids = frame["sample_id"].astype(str) + "#" + frame["_row_index"]
    oracle = frame[ORACLE] if ORACLE in frame.columns else pd.Series([None] * len(frame))
    prompts = pd.DataFrame(
        {
            "prompt_id": prompt_ids,
            "text": [TURN_SEPARATOR.join(t) for t in turns],
            "turns": turns,
            "dataset": frame["eval_name"].astype(str),
            "metadata": json_cells(
                {"sample_id": str(s), ORACLE: o} for s, o in zip(frame["sample_id"], oracle, strict=True)
            ),
            SOURCE_ROW: frame[SOURCE_ROW],
        }
    )
    metrics = frame["eval_name"].astype(str).map(metric_for)
    parts: list[pd.DataFrame] = []
    for model in models:
        response_column = f"{model}{RESPONSE_SUFFIX}"
        responses: Any = (
            [_joined(v) for v in frame[response_column]] if response_column in frame.columns else None
        )
        parts.append(
            pd.DataFrame(
                {
                    "prompt_id": prompt_ids,
                    "model": model,
                    "quality": frame[model],
                    "metric": metrics,
                    "cost_usd": frame[f"{model}{COST_SUFFIX}"],
                    "response": responses,
                    SOURCE_ROW: frame[SOURCE_ROW],
                }
            )
        )
    outcomes = pd.concat(parts, ignore_index=True)
    scored = outcomes["quality"].notna()
    return LoadedData.validated(
        prompts,
        outcomes[scored],
        model_cards(models, prices),
        source=source,
        format=WIDE_FORMAT,
        dropped={"cells without a score": int((~scored).sum())},
    )


def _joined(value: Any) -> str | None:
    parts = text_list(value)
    return TURN_SEPARATOR.join(parts) if parts else None


def load_subset(directory: Path, prices: PriceTable) -> LoadedData:
    """The shared `routing/routerbench-subset` folder (prompts.parquet + outcomes.parquet)."""
    prompts_in = read_parquet(
        directory / "prompts.parquet",
        required=(
            "prompt_id",
            "sample_id",
            "dataset",
            "routerdc_split",
            "prompt_text",
            "prompt_turns",
            ORACLE,
        ),
    )
    outcomes_in = read_parquet(
        directory / "outcomes.parquet", required=("prompt_id", "model", "quality", "cost_usd", "response")
    )
    prompts = pd.DataFrame(
        {
            **prompt_columns(prompts_in),
            "split": prompts_in["routerdc_split"],
            "metadata": json_cells(
                {"sample_id": s, ORACLE: o}
                for s, o in zip(prompts_in["sample_id"], prompts_in[ORACLE], strict=True)
            ),
        }
    )
    dataset = outcomes_in["prompt_id"].map(prompts.set_index("prompt_id")["dataset"])
    outcomes = outcomes_in.assign(metric=dataset.astype(str).map(metric_for))
    return LoadedData.validated(
        prompts,
        outcomes,
        model_cards(outcomes["model"].astype(str), prices),
        source=str(directory),
        format=SUBSET_FORMAT,
    )
