"""Load-test any OpenAI-compatible endpoint: closed/open loop, TTFT/ITL/tokens, goodput, sweeps.

Names load on first use (listed in __init__.pyi): a command that needs one part does not import all.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
