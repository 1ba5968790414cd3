"""The dataset a config names: `build_dataset(cfg, "train")` builds its `datasets.train` entry."""
from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from ..registry import DATASETS


def build_dataset(cfg: Config, name: str):
    """The dataset `datasets.<name>` of a config (DatasetError, one line, when its files are missing)."""
    sets = cfg.get("datasets") or {}
    if not sets.get(name):
        have = ", ".join(k for k, v in sets.items() if v) or "none"
        raise ConfigError(f"{cfg.source}: no datasets.{name} section (datasets defined: {have})")
    return DATASETS.build(sets[name], f"datasets.{name}", cfg.source)
