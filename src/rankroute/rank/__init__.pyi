"""What `rankroute.rank` exports: type checkers read it, and lazy_loader loads each name on first use."""

from .bradley_terry import (
    BradleyTerry,
    CovariateRatings,
    EloScale,
    Ratings,
    fit_with_covariates,
    online_elo,
    style_control,
    win_rate_matrix,
)
from .judge import instruction_difficulty, length_controlled_win_rates, win_rates
from .leaderboard import Leaderboard, build_leaderboard, leaderboard_from_store
from .pairs import (
    PairCounts,
    battles_from_matrix,
    normalise_battles,
    pair_counts_from_battles,
    pair_counts_from_frame,
    read_arena_pair_counts,
    read_battles_file,
    read_vicuna_votes,
)

__all__ = [
    "BradleyTerry",
    "CovariateRatings",
    "EloScale",
    "Leaderboard",
    "PairCounts",
    "Ratings",
    "battles_from_matrix",
    "build_leaderboard",
    "fit_with_covariates",
    "instruction_difficulty",
    "leaderboard_from_store",
    "length_controlled_win_rates",
    "normalise_battles",
    "online_elo",
    "pair_counts_from_battles",
    "pair_counts_from_frame",
    "read_arena_pair_counts",
    "read_battles_file",
    "read_vicuna_votes",
    "style_control",
    "win_rate_matrix",
    "win_rates",
]
