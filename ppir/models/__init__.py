"""The networks. Importing this package registers every model class under its official name.

Every module of this package is imported here except the helpers in `HELPERS`, so a new network is one new file
(`ppir/models/<name>.py` registering its class with `@MODELS.register`) and no other edit.
"""
import importlib
import pkgutil

from ..registry import MODELS
from .common import count_parameters

# modules that hold no network: blocks the networks share, the size check, the config-to-network builder
HELPERS = frozenset({"common", "size_limit", "build"})


def network_modules() -> list[str]:
    """The modules of this package that define networks (every module but `HELPERS` and `_private` ones)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if not m.ispkg and m.name not in HELPERS and not m.name.startswith("_"))


for _name in network_modules():
    importlib.import_module(f"{__name__}.{_name}")  # registration happens on import

__all__ = ["MODELS", "count_parameters", "network_modules"]
