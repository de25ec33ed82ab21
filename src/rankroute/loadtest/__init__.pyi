"""What `rankroute.loadtest` exports: type checkers read it, and lazy_loader loads each name on first use."""

from .client import ERROR_KINDS, RequestResult, request_body, timed_request
from .config import SLO, LoadTestConfig, load_config, make_config
from .prompts import prompts_from_file, prompts_from_task, synthetic_prompts
from .resources import ResourceSampler
from .results import read_loadtests, result_document, write_results
from .runner import LoadTestRun, arun_load_test, make_client, run_load_test
from .scripted import Script, ScriptedServer, scripted_server_process
from .summary import Distribution, LoadSummary, meets_slo, summarize
from .sweep import (
    RateSweepResult,
    SweepResult,
    arate_sweep,
    asweep,
    concurrency_levels,
    knee_index,
    rate_levels,
    rate_sweep,
    sweep,
)

__all__ = [
    "ERROR_KINDS",
    "SLO",
    "Distribution",
    "LoadSummary",
    "LoadTestConfig",
    "LoadTestRun",
    "RateSweepResult",
    "RequestResult",
    "ResourceSampler",
    "Script",
    "ScriptedServer",
    "SweepResult",
    "arate_sweep",
    "arun_load_test",
    "asweep",
    "concurrency_levels",
    "knee_index",
    "load_config",
    "make_client",
    "make_config",
    "meets_slo",
    "prompts_from_file",
    "prompts_from_task",
    "rate_levels",
    "rate_sweep",
    "read_loadtests",
    "request_body",
    "result_document",
    "run_load_test",
    "scripted_server_process",
    "summarize",
    "sweep",
    "synthetic_prompts",
    "timed_request",
    "write_results",
]
