"""The report page: one self-contained HTML file (plotly.js inline, PNG fallbacks, no external request)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from rankroute.data.store import OutcomeStore
from rankroute.report.sections import (
    Section,
    leaderboard_sections,
    loadtest_section,
    ratings_section,
    read_route_evaluation,
    router_section,
)

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:14px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c5cbd6;font-size:13px}nav{padding:8px 28px;background:#e9ecf1;font-size:14px}
nav a{margin-right:16px;color:#1d4ed8;text-decoration:none}
section{background:#fff;margin:16px 28px;padding:12px 20px;border-radius:6px;box-shadow:0 1px 2px #0002}
h2{font-size:18px;margin:6px 0 10px}h3{font-size:15px;margin:14px 0 6px}
table.data{border-collapse:collapse;font-size:12.5px;margin:6px 0 12px}
table.data th,table.data td{border-bottom:1px solid #e3e6ea;padding:3px 9px;text-align:right}
table.data th{background:#f0f2f5;position:sticky;top:0}
table.data td:nth-child(-n+2),table.data th:nth-child(-n+2){text-align:left}
.empty{color:#6b7280;font-style:italic}.plot{width:100%;max-width:1000px}
"""


def _plotly_js() -> str:
    """plotly.js from the plotly package itself, so the page needs no CDN and works offline."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def build_sections(
    store: OutcomeStore,
    *,
    route_evaluations: Iterable[str | Path] = (),
    bootstrap: int = 200,
    metric: str | None = None,
) -> list[Section]:
    """Every section of the report, in page order."""
    evaluations = [read_route_evaluation(path) for path in route_evaluations]
    return [
        *leaderboard_sections(store, bootstrap=bootstrap, metric=metric),
        ratings_section(store, bootstrap=min(bootstrap, 100)),
        router_section(evaluations),
        loadtest_section(store),
    ]


def render_html(
    store: OutcomeStore,
    *,
    route_evaluations: Iterable[str | Path] = (),
    extra_sections: Sequence[Section] = (),
    title: str = "rankroute report",
    bootstrap: int = 200,
    metric: str | None = None,
) -> str:
    """The whole report as one HTML string, readable from disk with no server and no network.

    `extra_sections` are appended after the built-in ones: the gateway's hook for live panels at /ui.
    """
    sections = [
        *build_sections(store, route_evaluations=route_evaluations, bootstrap=bootstrap, metric=metric),
        *extra_sections,
    ]
    counts = store.counts()
    subtitle = (
        f"store {store.location} · {counts.get('outcomes', 0)} outcomes · "
        f"{counts.get('battles', 0)} battles · {counts.get('runs', 0)} runs · "
        f"generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    nav = "".join(f'<a href="#{s.section_id}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.section_id}"><h2>{html.escape(s.title)}</h2>{s.html}</section>' for s in sections
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f'<script type="text/javascript">{_plotly_js()}</script></head><body>'
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
        f"<nav>{nav}</nav>{body}</body></html>"
    )


def write_report(
    store: OutcomeStore,
    out: str | Path,
    *,
    route_evaluations: Iterable[str | Path] = (),
    title: str = "rankroute report",
    bootstrap: int = 200,
    metric: str | None = None,
) -> Path:
    """Write the report to `out` and return its path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    page = render_html(
        store, route_evaluations=route_evaluations, title=title, bootstrap=bootstrap, metric=metric
    )
    path.write_text(page, encoding="utf-8")
    return path
