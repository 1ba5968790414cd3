"""Name -> class tables, so a YAML `type:` picks the class to build, and the one way to build from such a spec.

A spec is a mapping ``{type: Name, **arguments}`` found at a dotted place of a config ("model", "datasets.train",
"metrics.0", ...). Every registry builds it with `Registry.build`, so a mistake reads the same everywhere:

* no mapping, or no `type`             -> ConfigError "<place> must be a mapping with a 'type'" / "needs a 'type'"
* an unknown type                      -> ConfigError "<place>.type: unknown model type 'X' (did you mean ...)"
* an argument the class does not take  -> ConfigError "unknown key '<place>.<key>' for Class (did you mean ...)"
* an argument of the wrong type        -> ConfigError "<place>.<key> must be int (like the default 8), got ..."
* the class refuses a value            -> the class's own ConfigError (or DatasetError) with "<place>: " in front

ConfigErrors also name the config file (or the `-o` option) first. A DatasetError (files missing or unreadable)
names the place but not the file: the data is at fault there, and the message carries the data's path.

Each table knows the module whose import fills it and imports it on first look-up, so what a table holds never
depends on what the caller happened to import before.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Callable, Iterable

from .errors import ConfigError, DatasetError, quote


def did_you_mean(word, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest of `choices` to a misspelt `word`, or '' when none is close."""
    choices = list(choices)
    same_letters = [c for c in choices if c.lower() == str(word).lower()]  # difflib sees 'Adamw' nearer 'Adam'
    hint = same_letters or difflib.get_close_matches(str(word), choices, n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def at(where: str, text: str) -> str:
    """`text` after the place it concerns ("cfg.yml: ..."), or alone when that place is unknown ("")."""
    return f"{where}: {text}" if where else text


def value_fits(value, default) -> bool:
    """Is `value` acceptable where the declared default is `default`? (None or no default: anything.)"""
    if default is None or default is inspect.Parameter.empty:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return True


def check_keys(body: dict, defaults: dict, place: str, origin: Callable[[str], str], owner: str = "") -> None:
    """ConfigError for the first key of `body` that is not in `defaults` (key -> default) or whose value does not
    fit its default's type. `origin(dotted_key)` says where a key was set (the file or the `-o` option); `owner`
    (a class name) is named after an unknown key."""
    for key, value in body.items():
        dotted = f"{place}.{key}"
        if key not in defaults:
            whose = f" for {owner}" if owner else ""
            raise ConfigError(at(origin(dotted), f"unknown key {dotted!r}{whose}{did_you_mean(key, defaults)}; "
                                                 f"allowed: {', '.join(defaults)}"))
        default = defaults[key]
        if not value_fits(value, default):
            raise ConfigError(at(origin(dotted), f"{dotted} must be {type(default).__name__} (like the default "
                                                 f"{quote(default)}), got {type(value).__name__} {quote(value)}"))


def constructor_params(cls) -> dict[str, inspect.Parameter]:
    """The named arguments of `cls.__init__` (no self, *args or **kwargs)."""
    sig = inspect.signature(cls.__init__)
    return {n: p for n, p in sig.parameters.items()
            if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


class Registry:
    """A small name -> class table; one per kind of thing a config can name.

    `module` is the module whose import registers the classes (loaded on the first look-up).
    """

    def __init__(self, kind: str, module: str | None = None):
        self.kind = kind
        self.module = module
        self._table: dict[str, type] = {}

    def register(self, cls=None, *, name: str | None = None):
        def _add(c):
            key = name or c.__name__
            if key in self._table and self._table[key] is not c:
                raise ValueError(f"{self.kind} {key!r} registered twice")
            self._table[key] = c
            return c

        return _add(cls) if cls is not None else _add

    def _load(self) -> dict[str, type]:
        if self.module:
            importlib.import_module(self.module)  # registration happens on import; cached after the first time
        return self._table

    def get(self, name: str) -> type:
        table = self._load()
        if not isinstance(name, str) or name not in table:  # `type: [HINet]` is a mistake too, not a TypeError
            raise ConfigError(f"unknown {self.kind} type {name!r}{did_you_mean(name, table)}; "
                              f"known: {', '.join(sorted(table))}")
        return table[name]

    def unregister(self, name: str) -> type:
        """Remove and return the class registered as `name` (tests that register a throw-away class)."""
        if name not in self._table:
            raise KeyError(f"{self.kind} {name!r} is not registered")
        return self._table.pop(name)

    def __contains__(self, name) -> bool:
        return name in self._load()

    def names(self) -> list[str]:
        return sorted(self._load())

    # ------------------------------------------------------------------ specs
    def resolve(self, spec, place: str, origin: Callable[[str], str]) -> tuple[type, dict]:
        """The class a spec names and its arguments, checked against the constructor (ConfigError otherwise)."""
        if not isinstance(spec, dict):
            raise ConfigError(at(origin(place), f"{place} must be a mapping with a 'type' "
                                                f"(one of: {', '.join(self.names())})"))
        if "type" not in spec:
            raise ConfigError(at(origin(place), f"{place} needs a 'type' (one of: {', '.join(self.names())})"))
        try:
            cls = self.get(spec["type"])
        except ConfigError as e:
            raise ConfigError(at(origin(place + ".type"), f"{place}.type: {e}")) from None
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        params = constructor_params(cls)
        check_keys(kwargs, {n: p.default for n, p in params.items()}, place, origin, cls.__name__)
        return cls, kwargs

    def build(self, spec, place: str, source: str = "", **extra):
        """An instance of the class `spec` names (see the module docstring for the errors).

        `place`: where the spec sits in the config ("loss", "datasets.train"); `source`: the config file, named
        first in ConfigErrors; `extra`: arguments the caller adds (not from the config, so not checked).
        """
        cls, kwargs = self.resolve(spec, place, lambda _key: source)
        missing = [n for n, p in constructor_params(cls).items()
                   if p.default is p.empty and n not in kwargs and n not in extra]
        if missing:
            raise ConfigError(at(source, f"{place} needs {', '.join(repr(m) for m in missing)} for {cls.__name__}"))
        try:
            return cls(**kwargs, **extra)
        except DatasetError as e:
            raise DatasetError(f"{place}: {e}") from None
        except ConfigError as e:
            raise ConfigError(at(source, f"{place}: {e}")) from None


MODELS = Registry("model", "ppir.models")
DATASETS = Registry("dataset", "ppir.data.datasets")
LOSSES = Registry("loss", "ppir.losses")
METRICS = Registry("metric", "ppir.metrics")
OPTIMIZERS = Registry("optimizer", "ppir.engine.optim")
SCHEDULERS = Registry("lr_scheduler", "ppir.engine.optim")
