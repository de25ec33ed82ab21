"""What `rankroute.route` exports: type checkers read it, and lazy_loader loads each name on first use."""

from .base import NotFittedError, Router
from .baselines import OracleRouter, RandomRouter, SingleModelRouter, ZeroRouter
from .calibrate import (
    Calibration,
    CostQualityCurve,
    choose_willingness_to_pay,
    held_out_check,
    held_out_from_evaluation,
)
from .cascade import CascadeRouter
from .classifier import ClassifierRouter
from .curves import aiq, apgr, cpt, hull_aiq, non_decreasing_convex_hull, pgr
from .embeddings import MiniLMEncoder, PromptEncoder, TfidfEncoder, default_encoder
from .ensemble import EnsembleRouter
from .evaluate import RouterEvaluation, baseline_routers, default_routers, evaluate_routers, summarise_splits
from .knn import KNNRouter
from .mf import MatrixFactorizationRouter
from .persist import load_router, save_router
from .registry import learned_routers, make_router
from .split import PromptSplit, split_by_prompt
from .static_encoder import StaticEncoder

__all__ = [
    "Calibration",
    "CascadeRouter",
    "ClassifierRouter",
    "CostQualityCurve",
    "EnsembleRouter",
    "KNNRouter",
    "MatrixFactorizationRouter",
    "MiniLMEncoder",
    "NotFittedError",
    "OracleRouter",
    "PromptEncoder",
    "PromptSplit",
    "RandomRouter",
    "Router",
    "RouterEvaluation",
    "SingleModelRouter",
    "StaticEncoder",
    "TfidfEncoder",
    "ZeroRouter",
    "aiq",
    "apgr",
    "baseline_routers",
    "choose_willingness_to_pay",
    "cpt",
    "default_encoder",
    "default_routers",
    "evaluate_routers",
    "held_out_check",
    "held_out_from_evaluation",
    "hull_aiq",
    "learned_routers",
    "load_router",
    "make_router",
    "non_decreasing_convex_hull",
    "pgr",
    "save_router",
    "split_by_prompt",
    "summarise_splits",
]
