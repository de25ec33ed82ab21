"""The report at /ui: the outcome store's report pages plus a live section drawn from the gateway itself.

The report part (leaderboards, ratings, routers, load tests) is rendered by `rankroute.report` in a worker
thread and cached for `ui.cache_s`; the live part (requests, latency, cost, spend per key, errors, breakers)
is computed on every request from the spend ledger and the balancer's state, and refreshed in place by a
few lines of inline JavaScript polling /ui/live.json. Both need the admin key (Bearer, or HTTP Basic with
the key as password so a browser can log in); keys are shown by id and name only, never by secret.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import html
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from rankroute.data.errors import DataError
from rankroute.data.store import OutcomeStore, is_postgres_url
from rankroute.report import Chart, Section, Series, chart_html, render_html, table_html
from rankroute.report.charts import plotly_figure
from rankroute.serve.errors import GatewayError
from rankroute.serve.gateway import Gateway
from rankroute.serve.storage import SPEND_COLUMNS

LIVE_MARKER = "<!--rankroute-live-section-->"
_LIVE_TITLE = "Gateway live"
DEPLOYMENT_COLUMNS = [
    "model",
    "deployment",
    "requests",
    "errors",
    "latency p50 ms",
    "latency p95 ms",
    "input tokens",
    "output tokens",
    "cost USD",
]
_CHALLENGE = {"www-authenticate": 'Basic realm="rankroute gateway"'}


def _presented_secret(request: Request) -> str:
    """The admin key from 'Bearer KEY' or from HTTP Basic (any user name, the key as password)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 (UnicodeDecodeError)
            return ""
    return ""


def check_ui_access(gateway: Gateway, request: Request) -> None:
    """The same rule as the admin endpoints: refused unless the gateway has an admin key and it was sent."""
    if not gateway.admin_key:
        raise GatewayError(
            403,
            f"/ui is disabled: set {gateway.config.keys.admin_key_env} to enable it (it needs the admin key)",
            type="permission_error",
        )
    if not hmac.compare_digest(_presented_secret(request).encode(), gateway.admin_key.encode()):
        raise GatewayError(401, "/ui needs the admin key", type="authentication_error")


class ReportCache:
    """The rendered report page, kept for `ui.cache_s` seconds; concurrent requests wait for one rendering."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._page: str | None = None
        self._rendered_at = 0.0
        self._lock = asyncio.Lock()

    async def page(self) -> str:
        async with self._lock:
            if self._page is None or time.monotonic() - self._rendered_at >= self.gateway.config.ui.cache_s:
                self._page = await asyncio.to_thread(self._render)
                self._rendered_at = time.monotonic()
            return self._page

    def _render(self) -> str:
        ui = self.gateway.config.ui
        path = ui.outcome_store or self.gateway.config.storage.outcome_store
        live = Section("live", _LIVE_TITLE, LIVE_MARKER)
        title = "rankroute gateway"
        try:
            if path is not None and (is_postgres_url(path) or Path(path).exists()):
                with OutcomeStore(path, read_only=True) as store:
                    return render_html(
                        store,
                        route_evaluations=ui.route_evals,
                        extra_sections=[live],
                        title=title,
                        bootstrap=ui.bootstrap,
                    )
            why = (
                "No outcome store configured: set ui.outcome_store (or storage.outcome_store) in the config."
                if path is None
                else f"The outcome store {path} does not exist yet."
            )
            notice = Section("store", "Outcome store", f'<p class="empty">{html.escape(why)}</p>')
            with OutcomeStore(":memory:") as empty:
                return render_html(
                    empty, route_evaluations=ui.route_evals, extra_sections=[notice, live], title=title
                )
        except DataError as exc:
            problem = Section("store", "Report unavailable", f'<p class="empty">{html.escape(str(exc))}</p>')
            with OutcomeStore(":memory:") as empty:
                return render_html(empty, extra_sections=[problem, live], title=title)


def _percentile(values: pd.Series, q: float) -> float:
    return float(np.percentile(values.to_numpy(dtype=float), q)) if len(values) else float("nan")


async def live_figures(gateway: Gateway) -> dict[str, Any]:
    """Requests, latency p50/p95, cost and errors per model and deployment over the latest ledger rows,
    spend per key, and each deployment's circuit breaker, as plain JSON-safe values."""
    window = gateway.config.ui.live_window
    rows = pd.DataFrame(await gateway.store.spend_rows(window), columns=list(SPEND_COLUMNS))
    rows["deployment"] = rows["deployment"].fillna("(not served)")
    rows["error"] = rows["status"].astype(int) >= 400
    deployments = []
    for (model, deployment), group in rows.groupby(["model", "deployment"], sort=True):
        deployments.append(
            {
                "model": str(model),
                "deployment": str(deployment),
                "requests": len(group),
                "errors": int(group["error"].sum()),
                "latency p50 ms": _percentile(group["latency_ms"], 50),
                "latency p95 ms": _percentile(group["latency_ms"], 95),
                "input tokens": int(group["input_tokens"].sum()),
                "output tokens": int(group["output_tokens"].sum()),
                "cost USD": float(group["cost_usd"].sum()),
            }
        )
    per_key = rows.groupby(rows["key_id"].fillna("(no key)"))["status"].size().to_dict()
    keys = [
        {
            "key_id": key.key_id,
            "name": key.name,
            "requests": int(per_key.get(key.key_id, 0)),
            "spent USD": gateway.budgets.spent.get(key.key_id, 0.0),
            "budget USD": key.budget_usd,
            "revoked": key.revoked_at is not None,
        }
        for key in gateway.store.list_keys()
    ]
    if per_key.get("(no key)"):
        keys.append({"key_id": "(no key)", "name": "", "requests": int(per_key["(no key)"])})
    breakers = [
        {
            "deployment": state.config.name,
            "group": group_name,
            "state": state.breaker.state,
            "consecutive failures": state.breaker.consecutive,
            "in flight": state.in_flight,
            "failed attempts": int(
                gateway.metrics.registry.get_sample_value(
                    "rankroute_upstream_errors_total", {"deployment": state.config.name}
                )
                or 0
            ),
        }
        for group_name, states in sorted(gateway.states.items())
        for state in states
    ]
    requests = len(rows)
    errors = int(rows["error"].sum())
    totals = {
        "requests": requests,
        "errors": errors,
        "error rate": errors / requests if requests else None,
        "latency p50 ms": _percentile(rows["latency_ms"], 50),
        "latency p95 ms": _percentile(rows["latency_ms"], 95),
        "cost USD": float(rows["cost_usd"].sum()) if requests else 0.0,
        "cache hits": int(gateway.metrics.registry.get_sample_value("rankroute_cache_hits_total") or 0),
        "open breakers": sum(b["state"] != "closed" for b in breakers),
    }
    now = time.time()
    timeline = _timeline(rows, now)
    return _json_safe(
        {
            "generated_at": now,
            "window": window,
            "since": float(rows["ts"].min()) if requests else None,
            "totals": totals,
            "deployments": deployments,
            "keys": keys,
            "breakers": breakers,
            "timeline": timeline,
        }
    )


def _timeline(rows: pd.DataFrame, now: float, bucket_s: int = 10, buckets: int = 30) -> dict[str, list[Any]]:
    """Requests and errors per 10-second bucket over the last five minutes (x: seconds before now)."""
    ages = now - rows["ts"].astype(float)
    index = (ages // bucket_s).astype(int)
    recent = index < buckets
    ok = np.bincount(index[recent & ~rows["error"]], minlength=buckets)[:buckets]
    bad = np.bincount(index[recent & rows["error"]], minlength=buckets)[:buckets]
    return {
        "seconds_ago": [-(i * bucket_s) for i in range(buckets)][::-1],
        "ok": ok[::-1].tolist(),
        "errors": bad[::-1].tolist(),
    }


def _json_safe(value: Any) -> Any:
    """NaN and inf become null so the answer is strict JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def live_views(live: dict[str, Any]) -> tuple[dict[str, str], list[Chart]]:
    """The live tables as HTML (by container id) and the live charts."""

    def table(rows: list[dict[str, Any]], table_id: str, columns: list[str]) -> str:
        return table_html(pd.DataFrame(rows, columns=columns), table_id)

    tables = {
        "live-totals-box": table([live["totals"]], "live-totals", list(live["totals"])),
        "live-deployments-box": table(
            live["deployments"],
            "live-deployments",
            DEPLOYMENT_COLUMNS,
        ),
        "live-keys-box": table(
            live["keys"], "live-keys", ["key_id", "name", "requests", "spent USD", "budget USD", "revoked"]
        ),
        "live-breakers-box": table(
            live["breakers"],
            "live-breakers",
            ["deployment", "group", "state", "consecutive failures", "in flight", "failed attempts"],
        ),
    }
    names = [f"{d['model']} / {d['deployment']}" for d in live["deployments"]]
    latency = Chart(
        "chart-live-latency",
        "Latency per model / deployment",
        "milliseconds",
        "",
        [
            Series("p50", [d["latency p50 ms"] for d in live["deployments"]], names),
            Series("p95", [d["latency p95 ms"] for d in live["deployments"]], names),
        ],
        categorical_y=True,
        height=max(260, 40 * len(names) + 140),
    )
    timeline = live["timeline"]
    traffic = Chart(
        "chart-live-requests",
        "Requests per 10 s (last 5 minutes)",
        "seconds before now",
        "requests",
        [
            Series("served", timeline["seconds_ago"], timeline["ok"], mode="lines+markers"),
            Series("errors", timeline["seconds_ago"], timeline["errors"], mode="lines+markers"),
        ],
        height=300,
    )
    return tables, [traffic, latency]


_SCRIPT = """<script>(function(){
const url=%s, status=document.getElementById("live-status");
async function refresh(){
  try{
    const answer=await fetch(url,{cache:"no-store",credentials:"same-origin"});
    if(!answer.ok){status.textContent="live figures unavailable: HTTP "+answer.status;return;}
    const live=await answer.json();
    for(const [id,markup] of Object.entries(live.tables)){document.getElementById(id).innerHTML=markup;}
    for(const [id,figure] of Object.entries(live.charts)){Plotly.react(id,figure.data,figure.layout);}
    status.textContent=live.status;
  }catch(error){status.textContent="live figures unavailable: "+error;}
}
setInterval(refresh,%d);
})();</script>"""


def _status_line(live: dict[str, Any]) -> str:
    when = datetime.fromtimestamp(live["generated_at"], UTC).strftime("%H:%M:%S")
    return (
        f"Updated {when} UTC from the latest {live['totals']['requests']} ledger rows "
        f"(window: {live['window']} requests)."
    )


def live_section_html(live: dict[str, Any], url: str, refresh_s: float) -> str:
    """The live section's markup: status line, tables and charts, and the script that refreshes them."""
    tables, charts = live_views(live)
    boxes = {box: f'<div id="{box}">{markup}</div>' for box, markup in tables.items()}
    drawn = {chart.chart_id: chart_html(chart, fallback=False) for chart in charts}
    return (
        f'<p id="live-status">{html.escape(_status_line(live))}</p>'
        "<noscript><p>Scripts are off: figures are as of page load.</p></noscript>"
        f"<h3>Totals</h3>{boxes['live-totals-box']}"
        f"{drawn['chart-live-requests']}"
        f"<h3>Per model and deployment</h3>{boxes['live-deployments-box']}"
        f"{drawn['chart-live-latency']}"
        f"<h3>Spend per key</h3>{boxes['live-keys-box']}"
        f"<h3>Circuit breakers</h3>{boxes['live-breakers-box']}"
        + _SCRIPT
        % (json.dumps(url), int(refresh_s * 1000))
    )


def mount_ui(app: FastAPI, gateway: Gateway) -> None:
    """Add GET /ui (the page) and GET /ui/live.json (the live figures) to the gateway app."""
    cache = ReportCache(gateway)

    def refused(exc: GatewayError) -> Response:
        return exc.response(headers=_CHALLENGE if exc.status == 401 else None)

    @app.get("/ui", tags=["admin"], response_class=HTMLResponse)
    async def ui_page(request: Request) -> Response:
        """The report of the outcome store plus live gateway figures (admin key: Bearer or Basic)."""
        try:
            check_ui_access(gateway, request)
        except GatewayError as exc:
            return refused(exc)
        page = await cache.page()
        live = await live_figures(gateway)
        url = request.scope.get("root_path", "") + "/ui/live.json"
        section = live_section_html(live, url, gateway.config.ui.refresh_s)
        return HTMLResponse(page.replace(LIVE_MARKER, section, 1), headers={"cache-control": "no-store"})

    @app.get("/ui/live.json", tags=["admin"])
    async def ui_live(request: Request) -> Response:
        """The live figures as JSON, with the page's tables (HTML) and charts (plotly figures)."""
        try:
            check_ui_access(gateway, request)
        except GatewayError as exc:
            return refused(exc)
        live = await live_figures(gateway)
        tables, charts = live_views(live)
        figures = {chart.chart_id: plotly_figure(chart) for chart in charts}
        body = {**live, "status": _status_line(live), "tables": tables, "charts": figures}
        return JSONResponse(body, headers={"cache-control": "no-store"})
