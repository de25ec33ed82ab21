"""Model backends: one async interface over OpenAI-compatible HTTP servers and in-process GGUF models.

Both evaluate (outcomes) and serve (the gateway) call models only through `Backend`.
"""

from rankroute.backends.base import Backend, DecodingParams, Generation
from rankroute.backends.config import BackendConfig, load_backend_configs, make_backend
from rankroute.backends.cost import call_cost_usd
from rankroute.backends.errors import (
    BackendError,
    BackendUnsupported,
    ChecksumMismatch,
    MalformedResponse,
    MissingAPIKey,
    ModelFileError,
    UpstreamHTTPError,
)
from rankroute.backends.llama_cpp_python import LlamaCppPythonBackend
from rankroute.backends.local import LocalBackend
from rankroute.backends.local_models import (
    CATALOGUE,
    LocalModelInfo,
    LocalModelSpec,
    install_local_models,
    list_local_models,
    resolve_local_model,
)
from rankroute.backends.openai_http import OpenAIBackend
from rankroute.backends.retry import RetryPolicy, parse_retry_after
from rankroute.backends.tokens import count_message_tokens, count_tokens

__all__ = [
    "CATALOGUE",
    "Backend",
    "BackendConfig",
    "BackendError",
    "BackendUnsupported",
    "ChecksumMismatch",
    "DecodingParams",
    "Generation",
    "LlamaCppPythonBackend",
    "LocalBackend",
    "LocalModelInfo",
    "LocalModelSpec",
    "MalformedResponse",
    "MissingAPIKey",
    "ModelFileError",
    "OpenAIBackend",
    "RetryPolicy",
    "UpstreamHTTPError",
    "call_cost_usd",
    "count_message_tokens",
    "count_tokens",
    "install_local_models",
    "list_local_models",
    "load_backend_configs",
    "make_backend",
    "parse_retry_after",
    "resolve_local_model",
]
