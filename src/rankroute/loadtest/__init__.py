"""Load-test any OpenAI-compatible endpoint: closed/open loop, TTFT/ITL/tokens, goodput, sweeps."""

from rankroute.loadtest.client import ERROR_KINDS, RequestResult, request_body, timed_request
from rankroute.loadtest.config import SLO, LoadTestConfig, load_config, make_config
from rankroute.loadtest.prompts import prompts_from_file, prompts_from_task, synthetic_prompts
from rankroute.loadtest.resources import ResourceSampler
from rankroute.loadtest.results import read_loadtests, result_document, write_results
from rankroute.loadtest.runner import LoadTestRun, arun_load_test, make_client, run_load_test
from rankroute.loadtest.scripted import Script, ScriptedServer, scripted_server_process
from rankroute.loadtest.summary import Distribution, LoadSummary, meets_slo, summarize
from rankroute.loadtest.sweep import (
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
