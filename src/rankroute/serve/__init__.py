"""The OpenAI-compatible gateway: routes live traffic, survives failing upstreams and keeps the books.

Names load on first use (listed in __init__.pyi), so `python -m rankroute.serve.mock` starts without
importing FastAPI or the store.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
