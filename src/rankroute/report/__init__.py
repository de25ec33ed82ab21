"""A self-contained static HTML report of the store: leaderboards, ratings, Pareto, routers, load tests.

Nothing imports `report`; it reads the store and presents what `rank`, `route` and `loadtest` compute.

Names load on first use (listed in __init__.pyi): a command that needs one part does not import all.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
