"""What `rankroute.report` exports: type checkers read it, and lazy_loader loads each name on first use."""

from .charts import Chart, Series, chart_html
from .page import build_sections, render_html, write_report
from .sections import Section, read_route_evaluation, table_html

__all__ = [
    "Chart",
    "Section",
    "Series",
    "build_sections",
    "chart_html",
    "read_route_evaluation",
    "render_html",
    "table_html",
    "write_report",
]
