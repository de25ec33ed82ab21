"""The capability packages load their names on first use (lazy_loader, from each __init__.pyi)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import rankroute

STUBS = sorted(Path(rankroute.__file__).parent.rglob("__init__.pyi"))
PACKAGES = [
    ".".join(("rankroute", *stub.parent.relative_to(Path(rankroute.__file__).parent).parts)) for stub in STUBS
]


def test_every_capability_package_is_lazy() -> None:
    assert {"rankroute.data", "rankroute.route", "rankroute.rank", "rankroute.serve"} <= set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package: str) -> None:
    """A name listed in the stub but missing from its module would only fail when first used."""
    module = importlib.import_module(package)
    assert module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert sorted(dir(module)) == sorted(module.__all__)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = module.no_such_name


def test_importing_a_package_loads_no_part_of_it() -> None:
    probe = (
        "import sys, rankroute.route, rankroute.rank, rankroute.data\n"
        "print(','.join(n for n in ('numpy', 'pandas', 'duckdb', 'rankroute.route.knn') if n in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
