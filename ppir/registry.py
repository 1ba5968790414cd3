"""Name -> class tables, so a YAML `type:` picks the class to build."""
from __future__ import annotations

import difflib

from .errors import ConfigError


class Registry:
    """A small name -> class table; one per kind of thing a config can name."""

    def __init__(self, kind: str):
        self.kind = kind
        self._table: dict[str, type] = {}

    def register(self, cls=None, *, name: str | None = None):
        def _add(c):
            key = name or c.__name__
            if key in self._table and self._table[key] is not c:
                raise ValueError(f"{self.kind} {key!r} registered twice")
            self._table[key] = c
            return c

        return _add(cls) if cls is not None else _add

    def get(self, name: str) -> type:
        if name not in self._table:
            hint = difflib.get_close_matches(str(name), self._table, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"unknown {self.kind} type {name!r}{extra}; known: {', '.join(sorted(self._table))}"
            )
        return self._table[name]

    def unregister(self, name: str) -> type:
        """Remove and return the class registered as `name` (tests that register a throw-away class)."""
        if name not in self._table:
            raise KeyError(f"{self.kind} {name!r} is not registered")
        return self._table.pop(name)

    def __contains__(self, name) -> bool:
        return name in self._table

    def names(self) -> list[str]:
        return sorted(self._table)


MODELS = Registry("model")          # ppir/models/*
DATASETS = Registry("dataset")      # ppir/data/*
LOSSES = Registry("loss")           # ppir/losses.py
METRICS = Registry("metric")        # ppir/metrics.py
OPTIMIZERS = Registry("optimizer")  # ppir/engine/optim.py
SCHEDULERS = Registry("lr_scheduler")  # ppir/engine/optim.py
