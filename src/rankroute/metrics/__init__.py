"""Scoring functions for evaluation: plain functions over texts, labels and counts.

Text metrics wrap the field's reference implementations (sacrebleu, rouge-score, nltk, bert-score) so the
numbers match published ones; `code_execution` runs generated code against its tests in a limited subprocess.

Names load on first use (listed in __init__.pyi): a command that needs one part does not import all.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
