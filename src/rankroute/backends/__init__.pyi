"""What `rankroute.backends` exports: type checkers read it, and lazy_loader loads each name on first use."""

from .base import Backend, DecodingParams, Generation
from .config import BackendConfig, load_backend_configs, make_backend
from .cost import call_cost_usd
from .errors import (
    BackendError,
    BackendUnsupported,
    ChecksumMismatch,
    MalformedResponse,
    MissingAPIKey,
    ModelFileError,
    UpstreamHTTPError,
)
from .llama_cpp_python import LlamaCppPythonBackend
from .local import LocalBackend
from .local_models import (
    CATALOGUE,
    LocalModelInfo,
    LocalModelSpec,
    install_local_models,
    list_local_models,
    resolve_local_model,
)
from .openai_http import OpenAIBackend
from .retry import RetryPolicy, parse_retry_after
from .tokens import count_message_tokens, count_tokens

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
