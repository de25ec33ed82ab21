"""What `rankroute.data` exports: type checkers read it, and lazy_loader loads each name on first use."""

from .errors import DataError
from .importers import ImportReport, LoadedData, import_path, load_outcomes
from .prices import PriceTable
from .records import Battle, ModelCard, Outcome, Prompt
from .store import OutcomeStore, WriteReport, default_store_path

__all__ = [
    "Battle",
    "DataError",
    "ImportReport",
    "LoadedData",
    "ModelCard",
    "Outcome",
    "OutcomeStore",
    "PriceTable",
    "Prompt",
    "WriteReport",
    "default_store_path",
    "import_path",
    "load_outcomes",
]
