"""Importing this module registers every dataset class in `ppir.registry.DATASETS` (the table loads it on first
look-up). A new dataset module is added to the imports below."""
from . import paired, sidd_val, synthetic  # noqa: F401  (registration side effects)
