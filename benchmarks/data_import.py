"""How long importing the shared routing data takes: rankroute vs reading the same files with pandas alone.

Pandas' own read (`pd.read_pickle` / `pd.read_parquet`, what RouterBench and RouteLLM users do by hand) is
the floor: rankroute adds validation, the long layout, token counting (tiktoken cl100k_base) and pricing
where the source has no cost, and one DuckDB transaction for the store. Also checks RouterBench's oracle
label against the cheapest correct model recomputed from the imported outcomes. With `--postgres URL`
(a server you run; each source goes to a fresh database created beside the URL's and dropped after) the
same imports into a PostgreSQL store are timed too, and a read of all outcomes back from each engine.

    python -m benchmarks.data_import [--skip-alpacaeval] [--postgres postgresql://me@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from rankroute.data import OutcomeStore, import_path, load_outcomes

ROUTING = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing"


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def cpu_timed(function: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds and CPU seconds (all threads): CPU time stays honest on a machine shared with others."""
    cpu = time.process_time()
    wall, result = timed(function)
    return wall, time.process_time() - cpu, result


def pandas_read(folder: Path) -> int:
    """The peer: the folder's Parquet files read by pandas, nothing else."""
    return sum(len(pd.read_parquet(path)) for path in sorted(folder.glob("*.parquet")))


def wide_pickle(folder: Path, target: Path) -> Path:
    """The subset in RouterBench's published wide layout, as a pickle (what `routerbench_0shot.pkl` is)."""
    prompts = pd.read_parquet(folder / "prompts.parquet")
    outcomes = pd.read_parquet(folder / "outcomes.parquet")
    index = prompts["source_row_index"].to_numpy()
    wide = pd.DataFrame(
        {
            "sample_id": prompts["sample_id"].to_numpy(),
            "prompt": [list(t) for t in prompts["prompt_turns"]],
            "eval_name": prompts["dataset"].to_numpy(),
            "oracle_model_to_route_to": prompts["oracle_model_to_route_to"].to_numpy(),
        },
        index=index,
    )
    row_of = pd.Series(index, index=prompts["prompt_id"].to_numpy())
    for model, part in outcomes.groupby("model"):
        rows = row_of[part["prompt_id"]].to_numpy()
        wide[model] = pd.Series(part["quality"].to_numpy(), index=rows)
        wide[f"{model}|model_response"] = pd.Series([[r] for r in part["response"]], index=rows)
        wide[f"{model}|total_cost"] = pd.Series(part["cost_usd"].to_numpy(), index=rows)
    wide.to_pickle(target)
    return target


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server, dropped afterwards (one per import here, one per test there)."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def import_and_read(location: str, path: Path) -> tuple[float, float]:
    """Seconds to import `path` into a fresh store at `location`, then to read all its outcomes back."""
    with OutcomeStore(location) as store:
        import_s, _ = timed(lambda: import_path(store, path))
        read_s, _ = timed(store.read_outcomes)
    return import_s, read_s


def oracle_agreement(folder: Path) -> tuple[int, int]:
    data = load_outcomes(folder)
    correct = data.outcomes[data.outcomes["quality"] == 1.0].sort_values(["prompt_id", "cost_usd"])
    cheapest = correct.drop_duplicates("prompt_id").set_index("prompt_id")["model"]
    prompts = data.prompts.set_index("prompt_id")
    label = prompts["metadata"].map(lambda m: json.loads(m)["oracle_model_to_route_to"])
    recomputed = cheapest.reindex(prompts.index).fillna("no_model_correct")
    return int((recomputed == label).sum()), len(prompts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-alpacaeval", action="store_true", help="leave out the 46k-output folder")
    parser.add_argument("--postgres", help="also import into PostgreSQL (server URL; needs [postgres])")
    args = parser.parse_args()
    console = Console(width=120)
    load_outcomes(ROUTING / "routellm-gpt4-mixtral")  # warm: tokenizer file parsed once per process
    table = Table(title="importing the shared routing data (seconds, one run each, same process)")
    for column in (
        "source",
        "outcomes",
        "pandas read (peer)",
        "rankroute load",
        "load CPU",
        "import into DuckDB",
        "read back",
        *(["import into PostgreSQL", "read back "] if args.postgres else []),
        "x peer",
    ):
        table.add_column(column, justify="left" if column == "source" else "right")
    with tempfile.TemporaryDirectory() as scratch:
        sources = [
            ("routerbench wide .pkl", wide_pickle(ROUTING / "routerbench-subset", Path(scratch) / "rb.pkl")),
            ("routerbench-subset/", ROUTING / "routerbench-subset"),
            ("routellm-gpt4-mixtral/", ROUTING / "routellm-gpt4-mixtral"),
        ]
        if not args.skip_alpacaeval:
            sources.append(("alpacaeval/", ROUTING / "alpacaeval"))
        for number, (name, path) in enumerate(sources):
            peer_s, _ = timed(lambda p=path: len(pd.read_pickle(p)) if p.suffix == ".pkl" else pandas_read(p))
            load_s, load_cpu_s, data = cpu_timed(lambda p=path: load_outcomes(p))
            import_s, read_s = import_and_read(str(Path(scratch) / f"store{number}.duckdb"), path)
            postgres: list[str] = []
            if args.postgres:
                with scratch_database(args.postgres) as url:
                    postgres = [f"{seconds:.2f}" for seconds in import_and_read(url, path)]
            table.add_row(
                name,
                f"{len(data.outcomes):,}",
                f"{peer_s:.2f}",
                f"{load_s:.2f}",
                f"{load_cpu_s:.2f}",
                f"{import_s:.2f}",
                f"{read_s:.2f}",
                *postgres,
                f"{load_s / peer_s:.0f}",
            )
    console.print(table)
    agree, total = oracle_agreement(ROUTING / "routerbench-subset")
    console.print(
        f"RouterBench oracle_model_to_route_to vs cheapest correct model recomputed: {agree}/{total} "
        f"prompts agree ({agree / total:.2%})"
    )


if __name__ == "__main__":
    main()
