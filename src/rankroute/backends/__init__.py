"""Model backends: one async interface over OpenAI-compatible HTTP servers and in-process GGUF models.

Both evaluate (outcomes) and serve (the gateway) call models only through `Backend`.

Names load on first use (listed in __init__.pyi): a command that needs one part does not import all.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
