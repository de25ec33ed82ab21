"""Routers that pick a model per prompt, and their evaluation on cost-quality curves."""

from rankroute.route.base import NotFittedError, Router
from rankroute.route.baselines import OracleRouter, RandomRouter, SingleModelRouter, ZeroRouter
from rankroute.route.calibrate import (
    Calibration,
    CostQualityCurve,
    choose_willingness_to_pay,
    held_out_check,
    held_out_from_evaluation,
)
from rankroute.route.cascade import CascadeRouter
from rankroute.route.classifier import ClassifierRouter
from rankroute.route.curves import aiq, apgr, cpt, hull_aiq, non_decreasing_convex_hull, pgr
from rankroute.route.embeddings import MiniLMEncoder, PromptEncoder, TfidfEncoder, default_encoder
from rankroute.route.ensemble import EnsembleRouter
from rankroute.route.evaluate import (
    RouterEvaluation,
    baseline_routers,
    default_routers,
    evaluate_routers,
    summarise_splits,
)
from rankroute.route.knn import KNNRouter
from rankroute.route.mf import MatrixFactorizationRouter
from rankroute.route.persist import load_router, save_router
from rankroute.route.registry import learned_routers, make_router
from rankroute.route.split import PromptSplit, split_by_prompt
from rankroute.route.static_encoder import StaticEncoder

__all__ = ["NotFittedError", "Router"]
__all__ += ["OracleRouter", "PromptSplit", "RandomRouter", "SingleModelRouter", "ZeroRouter"]
__all__ += ["split_by_prompt"]
__all__ += ["RouterEvaluation", "aiq", "apgr", "cpt", "hull_aiq", "non_decreasing_convex_hull", "pgr"]
__all__ += ["Calibration", "CostQualityCurve", "baseline_routers", "default_routers", "evaluate_routers"]
__all__ += ["summarise_splits"]
__all__ += ["choose_willingness_to_pay", "held_out_check", "held_out_from_evaluation"]
__all__ += ["CascadeRouter", "ClassifierRouter", "EnsembleRouter", "KNNRouter", "MatrixFactorizationRouter"]
__all__ += ["MiniLMEncoder", "PromptEncoder", "StaticEncoder", "TfidfEncoder", "default_encoder"]
__all__ += ["learned_routers", "load_router", "make_router", "save_router"]
