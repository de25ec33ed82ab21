"""Importers: rankroute's long format, RouterBench's wide table and the shared routing folders.

Names load on first use (listed in __init__.pyi), so naming the formats does not import pandas.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
