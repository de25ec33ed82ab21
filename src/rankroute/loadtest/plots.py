"""PNG plots of a load test: latency CDFs per level; throughput against concurrency for sweeps, and
achieved rate and goodput against the offered rate for rate sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def save_plots(document: dict[str, Any], folder: Path) -> list[Path]:
    """`latency_cdf.png` (TTFT, ITL and end-to-end latency CDFs per level) and, for several levels,
    `throughput.png` (output tokens/s and p50 latency against concurrency, knee marked; for a rate sweep,
    achieved and within-SLO requests/s and p50 TTFT against the offered rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = document["levels"]
    written: list[Path] = []
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for level in levels:
        good = [r for r in level.get("results", []) if r["ok"] and not r["warmup"]]
        label = _label(level)
        for axis, key in zip(axes, ("ttft_ms", "itl_ms", "latency_ms"), strict=True):
            values = np.sort([r[key] for r in good if r[key] is not None])
            if values.size:
                axis.step(values, np.arange(1, values.size + 1) / values.size, where="post", label=label)
    for axis, title in zip(
        axes, ("time to first token (ms)", "inter-token latency (ms)", "latency (ms)"), strict=True
    ):
        axis.set_xlabel(title)
        axis.set_ylabel("fraction of requests")
        axis.grid(alpha=0.3)
    if any(axis.lines for axis in axes):
        axes[0].legend(fontsize=7)
    figure.tight_layout()
    written.append(folder / "latency_cdf.png")
    figure.savefig(written[-1], dpi=110)
    plt.close(figure)
    if len(levels) > 1 and document.get("mode") == "rate-sweep":
        written.append(_rate_plot(document, folder, plt))
    elif len(levels) > 1:
        concurrency = [level["config"]["concurrency"] for level in levels]
        throughput = [level["summary"]["output_tokens_per_s"] for level in levels]
        latency = [level["summary"]["latency_ms"]["p50"] or np.nan for level in levels]
        figure, axis = plt.subplots(figsize=(6.5, 4))
        axis.plot(concurrency, throughput, "o-", label="output tokens/s")
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent users")
        axis.set_ylabel("output tokens/s")
        twin = axis.twinx()
        twin.plot(concurrency, latency, "s--", color="tab:red", label="p50 latency (ms)")
        twin.set_ylabel("p50 latency (ms)")
        knee = document.get("knee_concurrency")
        if knee is not None:
            axis.axvline(knee, color="grey", linestyle=":", label=f"knee: {knee} users")
        axis.legend(loc="upper left", fontsize=8)
        twin.legend(loc="lower right", fontsize=8)
        figure.tight_layout()
        written.append(folder / "throughput.png")
        figure.savefig(written[-1], dpi=110)
        plt.close(figure)
    return written


def _rate_plot(document: dict[str, Any], folder: Path, plt: Any) -> Path:
    from matplotlib.ticker import ScalarFormatter

    levels = document["levels"]
    offered = [level["config"]["rate"] for level in levels]
    figure, axis = plt.subplots(figsize=(6.5, 4))
    axis.plot(offered, offered, ":", color="grey", label="offered")
    axis.plot(offered, [level["summary"]["requests_per_s"] for level in levels], "o-", label="achieved req/s")
    goodput = [level["summary"]["goodput_requests_per_s"] for level in levels]
    axis.plot(offered, goodput, "^-", label="within SLO req/s")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log", base=2)
    for scale in (axis.xaxis, axis.yaxis):  # 10, 20, 40 rather than powers of two
        scale.set_major_formatter(ScalarFormatter())
    axis.set_xlabel("offered rate (requests/s, Poisson arrivals)")
    axis.set_ylabel("requests/s")
    twin = axis.twinx()
    twin.plot(
        offered, [level["summary"]["ttft_ms"]["p50"] or np.nan for level in levels], "s--", color="tab:red"
    )
    twin.set_ylabel("p50 TTFT (ms)", color="tab:red")
    knee = document.get("knee_rate")
    if knee is not None:
        axis.axvline(knee, color="grey", linestyle="-.", label=f"knee: {knee:g} req/s")
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path = folder / "throughput.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _label(level: dict[str, Any]) -> str:
    config = level["config"]
    if config["mode"] == "open":
        return f"{config['rate']:g} req/s"
    return f"{config['concurrency']} users"
