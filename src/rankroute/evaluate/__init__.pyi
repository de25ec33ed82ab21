"""What `rankroute.evaluate` exports: type checkers read it, and lazy_loader loads each name on first use."""

from .config import EvalConfig, TaskSpec, load_eval_config, stable_hash
from .runner import EvalIssue, EvalReport, Runner, outcome_config_key, run_eval
from .summary import summarize, summary_table

__all__ = [
    "EvalConfig",
    "EvalIssue",
    "EvalReport",
    "Runner",
    "TaskSpec",
    "load_eval_config",
    "outcome_config_key",
    "run_eval",
    "stable_hash",
    "summarize",
    "summary_table",
]
