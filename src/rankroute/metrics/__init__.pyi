"""What `rankroute.metrics` exports: type checkers read it, and lazy_loader loads each name on first use."""

from .answers import exact_match, extract_number, normalize_answer, numeric_match, token_f1
from .classification import accuracy, perplexity, precision_recall_f1
from .code_execution import (
    ExecutionResult,
    SandboxLimits,
    humaneval_program,
    mbpp_program,
    run_program,
    run_programs,
)
from .errors import MetricUnavailable
from .pairwise import judge_score, pass_at_k, win_rate
from .text import bertscore, bleu, chrf, meteor, rouge, sentence_bleu, sentence_chrf, ter

__all__ = [
    "ExecutionResult",
    "MetricUnavailable",
    "SandboxLimits",
    "accuracy",
    "bertscore",
    "bleu",
    "chrf",
    "exact_match",
    "extract_number",
    "humaneval_program",
    "judge_score",
    "mbpp_program",
    "meteor",
    "normalize_answer",
    "numeric_match",
    "pass_at_k",
    "perplexity",
    "precision_recall_f1",
    "rouge",
    "run_program",
    "run_programs",
    "sentence_bleu",
    "sentence_chrf",
    "ter",
    "token_f1",
    "win_rate",
]
