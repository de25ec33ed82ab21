"""Routers by name: what the CLI, the evaluation and the gateway build routers from."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from rankroute.data.errors import DataError
from rankroute.route.base import Router
from rankroute.route.cascade import CascadeRouter
from rankroute.route.classifier import ClassifierRouter
from rankroute.route.embeddings import PromptEncoder
from rankroute.route.ensemble import EnsembleRouter
from rankroute.route.knn import KNNRouter
from rankroute.route.mf import MatrixFactorizationRouter

LEARNED_ROUTERS: dict[str, Callable[..., Router]] = {
    "knn": KNNRouter,
    "classifier": ClassifierRouter,
    "mlp": lambda **params: ClassifierRouter(**{"kind": "mlp", "calibration": "sigmoid", **params}),
    "mf": MatrixFactorizationRouter,
    "cascade": CascadeRouter,
    "ensemble": EnsembleRouter,
}

BASELINE_ROUTERS = {
    "oracle": "OracleRouter",
    "random": "RandomRouter",
    "single": "SingleModelRouter",
    "zero": "ZeroRouter",
}
"""Baselines live in rankroute.route.baselines (owned by the evaluation side); imported lazily."""


def learned_routers(encoder: PromptEncoder | None = None) -> dict[str, Router]:
    """Fresh, default-configured instances of every learned router, sharing one encoder (and its cache)."""
    return {name: factory(encoder=encoder) for name, factory in LEARNED_ROUTERS.items()}


def router_names() -> list[str]:
    return [*LEARNED_ROUTERS, *BASELINE_ROUTERS]


def make_router(name: str, **params: Any) -> Router:
    """A router by registry name with hyper-parameters, e.g. make_router("knn", n_neighbors=20)."""
    key = name.strip().lower()
    if key in LEARNED_ROUTERS:
        factory: Callable[..., Router] = LEARNED_ROUTERS[key]
    elif key in BASELINE_ROUTERS:
        try:
            module = importlib.import_module("rankroute.route.baselines")
            factory = getattr(module, BASELINE_ROUTERS[key])
        except (ImportError, AttributeError) as error:
            raise DataError(f"baseline router {name!r} is not available ({error})") from error
    else:
        raise DataError(f"unknown router {name!r}", hint=f"choose one of: {', '.join(router_names())}")
    try:
        return factory(**params)
    except TypeError as error:
        raise DataError(f"bad parameters for router {name!r}: {error}") from error
