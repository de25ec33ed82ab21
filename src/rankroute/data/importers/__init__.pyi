"""What `rankroute.data.importers` exports: type checkers read it; lazy_loader loads each on first use."""

from .base import ImportReport, LoadedData
from .dispatch import detect_format, import_path, load_outcomes
from .formats import FORMATS
from .routerbench import load_routerbench_from_hub
from .tokens import count_tokens

__all__ = [
    "FORMATS",
    "ImportReport",
    "LoadedData",
    "count_tokens",
    "detect_format",
    "import_path",
    "load_outcomes",
    "load_routerbench_from_hub",
]
