"""Routers that pick a model per prompt, and their evaluation on cost-quality curves.

Names load on first use (listed in __init__.pyi): a command that needs one part does not import all.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
