"""The networks. Importing this package registers every model class under its official name."""
from ..registry import MODELS
from .common import count_parameters

from . import hinet, mimo_unet, mirnet  # noqa: F401  (registration side effects)

__all__ = ["MODELS", "count_parameters"]
