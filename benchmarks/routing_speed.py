"""Routing speed: one routing decision for one new prompt, embedding included, and batched throughput.

Run: python -m benchmarks.routing_speed [--n-single 200] [--n-batch 2000] [--quality]

Setup: routerbench-subset (11 models), routers fitted on 1,000 prompts, decisions on 500 others, each
timed call a prompt the router has not seen. Rows, all in the same run:
- every learned router with the default encoder (static MiniLM: no embedding cache, nothing to hit);
- the same kNN router with full all-MiniLM-L6-v2 (the previous default) on an embedding-cache miss;
- RouteLLM's `mf` router method as RouteLLM runs it (one embedding call per prompt, then its MFModel
  forward in torch: projection, normalised model embeddings, linear scorer), with MiniLM in place of
  OpenAI's text-embedding-3-small (unreachable offline) and untrained weights (timing only);
- batches of 256 prompts per call, embedding included (static) or from the SQLite cache (MiniLM).
--quality adds routing AIQ per dataset (seed-0 split) with each encoder, to show speed costs no quality.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from rankroute.data.matrix import OutcomeMatrix
from rankroute.route.base import Router
from rankroute.route.embeddings import MiniLMEncoder, PromptEncoder, TfidfEncoder, load_minilm
from rankroute.route.features import question_text
from rankroute.route.knn import KNNRouter
from rankroute.route.registry import make_router
from rankroute.route.static_encoder import StaticEncoder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing" / "routerbench-subset"
LAMBDA = 1e-3
TARGET_P50_MS = 5.0
TARGET_BATCHED = 1000.0
ROUTERS = ("knn", "mf", "classifier", "cascade")


def load() -> OutcomeMatrix:
    prompts = pd.read_parquet(DATA / "prompts.parquet").rename(columns={"prompt_text": "text"})
    outcomes = pd.read_parquet(DATA / "outcomes.parquet").assign(metric="quality")
    return OutcomeMatrix.from_frames(prompts, outcomes)


def latencies_ms(call: Callable[[str], object], texts: list[str]) -> np.ndarray:
    out = []
    for text in texts:
        start = time.perf_counter()
        call(text)
        out.append((time.perf_counter() - start) * 1000)
    return np.array(out)


def decision(router: Router) -> Callable[[str], object]:
    """One routing decision for one prompt text."""
    return lambda text: router.route([text], LAMBDA)


def batched_rate(router: Router, texts: list[str], batch_size: int = 256) -> float:
    start = time.perf_counter()
    for lo in range(0, len(texts), batch_size):
        router.route(texts[lo : lo + batch_size], LAMBDA)
    return len(texts) / (time.perf_counter() - start)


class RouteLLMStyleMF:
    """RouteLLM's MFModel decision path, rebuilt for timing: embed the prompt (one call per prompt, no
    cache), project it (bias-free linear), multiply by each model's L2-normalised embedding, score with a
    bias-free linear layer; here over all 11 models and taking the best, as rankroute's router does."""

    def __init__(self, n_models: int, text_dim: int = 384, dim: int = 128) -> None:
        import torch

        torch.manual_seed(0)
        self.model_embeddings = torch.nn.Embedding(n_models, dim)
        self.text_projection = torch.nn.Linear(text_dim, dim, bias=False)
        self.classifier = torch.nn.Linear(dim, 1, bias=False)
        self.embedder = load_minilm(num_threads=1)

    def choose(self, text: str) -> int:
        import torch

        with torch.no_grad():
            prompt = torch.as_tensor(self.embedder.encode([text])[0])
            models = torch.nn.functional.normalize(self.model_embeddings.weight, p=2, dim=1)
            scores = self.classifier(models * self.text_projection(prompt)).squeeze(-1)
            return int(scores.argmax())


def speed_table(matrix: OutcomeMatrix, n_single: int, n_batch: int, n_minilm: int, console: Console) -> Table:
    complete = matrix.complete_rows()
    order = np.random.default_rng(0).permutation(complete.n_prompts)
    train = complete.subset(order[:1000])
    serve = [complete.texts[i] for i in order[1000:1500]]
    singles = serve[:n_single]
    batch = (serve * (n_batch // len(serve) + 1))[:n_batch]
    table = Table(title="Routing speed: routerbench-subset, 11 models, 1,000 training prompts")
    for column in ("what", "p50 ms", "p99 ms", "prompts/s", "target"):
        table.add_column(column, justify="left" if column in ("what", "target") else "right")

    def add_single(what: str, ms: np.ndarray, target: bool = True) -> None:
        p50 = float(np.percentile(ms, 50))
        verdict = f"p50 <= {TARGET_P50_MS:g} ms: {'met' if p50 <= TARGET_P50_MS else 'NOT met'}"
        row = [f"{p50:.2f}", f"{np.percentile(ms, 99):.2f}", f"{1000 / ms.mean():,.0f}"]
        table.add_row(what, *row, verdict if target else "")

    def add_batched(what: str, rate: float, target: bool = True) -> None:
        verdict = f">= {TARGET_BATCHED:,.0f}/s: {'met' if rate >= TARGET_BATCHED else 'NOT met'}"
        table.add_row(what, "", "", f"{rate:,.0f}", verdict if target else "")

    static = StaticEncoder(memo_size=0)  # every timed prompt tokenized and embedded; the memo is timed last
    with console.status("loading (first run on a machine: distilling) the static MiniLM table"):
        start = time.perf_counter()
        static.fit([])
        console.print(f"static table ready in {time.perf_counter() - start:.1f} s ({static.table_path})")
    routers: dict[str, Router] = {}
    for name in ROUTERS:
        with console.status(f"fitting {name} (static MiniLM)"):
            routers[name] = make_router(name, encoder=static).fit(train)
    for router in routers.values():
        for i in range(5):  # warm-up: first calls allocate, load the tokenizer
            router.route([f"warm-up {i}"], LAMBDA)
    for name, router in routers.items():
        add_single(
            f"{name}: one new prompt, static MiniLM embedding",
            latencies_ms(decision(router), singles),
        )
    add_single(
        "  encoder only: static MiniLM, one prompt",
        latencies_ms(lambda t: static.encode([question_text(t)]), singles),
        target=False,
    )

    minilm = MiniLMEncoder(num_threads=1)  # the default disk cache: training prompts encode once per machine
    with console.status("fitting kNN with full MiniLM (encodes uncached training prompts)"):
        knn_minilm = KNNRouter(encoder=minilm)
        knn_minilm.fit(train)
    uncached = MiniLMEncoder(cache_dir=False, num_threads=1)  # same model and vectors, disk cache off
    cached_encoder, knn_minilm.encoder_ = knn_minilm.encoder_, uncached
    knn_minilm.route(["warm-up"], LAMBDA)
    add_single(
        "peer: knn with full MiniLM @128 tokens, embedding not cached",
        latencies_ms(decision(knn_minilm), singles[:n_minilm]),
    )
    knn_minilm.encoder_ = cached_encoder
    routellm = RouteLLMStyleMF(len(train.models))
    routellm.choose("warm-up")
    add_single(
        "peer: RouteLLM mf method (MiniLM embed per prompt + torch MFModel)",
        latencies_ms(lambda t: routellm.choose(question_text(t)), singles[:n_minilm]),
    )
    for name, router in routers.items():
        add_batched(f"{name}: batches of 256, static embedding included", batched_rate(router, batch))
    static.memo_size = 10_000
    static.encode([question_text(t) for t in serve])
    for name in ("knn", "mf"):
        rate = batched_rate(routers[name], batch)
        add_batched(f"{name}: batches of 256, embeddings cached (the encoder's in-memory memo)", rate)
    with console.status("filling the MiniLM cache with the batch prompts"):
        minilm.encode([question_text(t) for t in serve])
    add_batched(
        "peer: knn with full MiniLM, batches of 256, SQLite-cached embeddings",
        batched_rate(knn_minilm, batch),
        target=False,
    )
    return table


def quality_table(matrix: OutcomeMatrix, console: Console) -> Table:
    """AIQ per dataset of kNN and MF with each encoder, seed-0 split, all routers in one evaluation (so
    they share one cost range per dataset, as in `rankroute route eval`)."""
    from rankroute.route.baselines import ZeroRouter
    from rankroute.route.evaluate import evaluate_routers

    encoders: dict[str, PromptEncoder] = {
        "static MiniLM (default)": StaticEncoder(),
        "full MiniLM @128": MiniLMEncoder(),
        "TF-IDF": TfidfEncoder(),
    }
    routers: dict[str, Router] = {"zero": ZeroRouter(seed=0)}
    for label, encoder in encoders.items():
        for kind in ("knn", "mf"):
            routers[f"{kind} | {label}"] = make_router(kind, encoder=encoder)
    with console.status("evaluating kNN and MF with each encoder (full MiniLM: encodes uncached prompts)"):
        evaluation = evaluate_routers(matrix, routers, seed=0, n_bootstrap=200)
    datasets = ("arc-challenge", "mbpp", "winogrande", "all")
    table = Table(title="Routing AIQ by encoder (routerbench-subset, seed-0 split, 95% bootstrap interval)")
    for column in ("router | encoder", *datasets):
        table.add_column(column, justify="left" if column.startswith("router") else "right")
    for name in routers:
        cells = []
        for dataset in datasets:
            row = next(r for r in evaluation.rows if r["router"] == name and r["dataset"] == dataset)
            cells.append(f"{row['aiq']:.4f} [{row['aiq_ci_low']:.3f}, {row['aiq_ci_high']:.3f}]")
        table.add_row(name, *cells)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-single", type=int, default=200, help="distinct prompts timed one by one")
    parser.add_argument("--n-batch", type=int, default=2000, help="prompts routed in batches of 256")
    parser.add_argument("--n-minilm", type=int, default=50, help="prompts timed for the full-MiniLM peers")
    parser.add_argument("--quality", action="store_true", help="also compare routing AIQ by encoder")
    args = parser.parse_args()
    console = Console(width=150)
    matrix = load()
    console.print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    console.print(speed_table(matrix, args.n_single, args.n_batch, args.n_minilm, console))
    console.print(f"load average after the speed runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    console.print(
        f"Targets (issue 2): p50 <= {TARGET_P50_MS:g} ms per single decision including the embedding; "
        f">= {TARGET_BATCHED:,.0f} prompts/s batched."
    )
    if args.quality:
        console.print(quality_table(matrix, console))
        console.print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
