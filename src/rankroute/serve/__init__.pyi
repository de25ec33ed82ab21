"""What `rankroute.serve` exports: type checkers read it, and lazy_loader loads each name on first use."""

from .app import create_app
from .config import DeploymentConfig, GatewayConfig, RouterModelConfig, load_config
from .errors import GatewayError
from .gateway import Gateway
from .guardrails import GuardrailViolation, redact_text
from .storage import GatewayStore, VirtualKey, hash_key

__all__ = [
    "DeploymentConfig",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "GatewayStore",
    "GuardrailViolation",
    "RouterModelConfig",
    "VirtualKey",
    "create_app",
    "hash_key",
    "load_config",
    "redact_text",
]
