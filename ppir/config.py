"""YAML configs: loading, `-o a.b=value` overrides and validation.

Every problem becomes one `ConfigError` whose message names the file (or the `-o` option) and the key,
so a CLI can print a single line instead of a traceback.
"""
from __future__ import annotations

import copy
import difflib
import inspect
import os
from typing import Any, Iterable

import yaml

from .errors import ConfigError

# Top-level sections a config may have. Typed sections hold a `type:` naming a class from a registry; their
# other keys are that class's constructor arguments and are checked against its signature. `datasets` maps a
# name (train, val, test_rain100h, ...) to a typed entry, `metrics` is a list of typed entries. Plain
# sections (train, val, export) are checked against a dataclass registered with `register_section`.
KNOWN_SECTIONS = ("model", "datasets", "loss", "optimizer", "lr_scheduler", "metrics", "train", "val", "export")
_SECTION_SCHEMAS: dict = {}
# Modules whose import registers classes that configs can name; a module not written yet is skipped.
_REGISTERING_MODULES = ("ppir.models", "ppir.data", "ppir.losses", "ppir.metrics", "ppir.engine")


def register_section(name: str):
    """Class decorator: a dataclass whose fields (with defaults) are the keys allowed in a plain section."""
    def _add(cls):
        if name not in KNOWN_SECTIONS:
            raise ValueError(f"unknown section {name!r}")
        _SECTION_SCHEMAS[name] = cls
        return cls
    return _add


class Config(dict):
    """A plain dict of the loaded YAML that remembers where it came from (for error messages)."""

    def __init__(self, data: dict, source: str = "<dict>", override_keys: Iterable[str] = ()):
        super().__init__(data)
        self.source = source
        self.override_keys = set(override_keys)

    def origin(self, key: str) -> str:
        """Where a dotted key was set: the `-o` option or the file."""
        return f"-o {key}" if key in self.override_keys else self.source


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    return data


def _merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and "type" not in v:
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _load_with_bases(path: str, seen: tuple = ()) -> dict:
    """Read a YAML file; a `_base_: other.yml` key (relative to the file) is loaded first and overlaid."""
    real = os.path.realpath(path)
    if real in seen:
        raise ConfigError(f"{path}: _base_ chain loops back to itself")
    data = _read_yaml(path)
    base = data.pop("_base_", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: _base_ must be a file path, got {base!r}")
    base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
    return _merge(_load_with_bases(base_path, seen + (real,)), data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b=value' -> (['a', 'b'], value parsed as YAML, so numbers, booleans, lists and null work)."""
    if "=" not in text:
        raise ConfigError(f"-o {text}: an override must look like section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"-o {text}: bad key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> list[str]:
    """Set each `a.b=value` in cfg (in place; `metrics.0.crop_border=4` indexes lists); returns the keys set."""
    keys = []
    for text in overrides or ():
        parts, value = parse_override(text)
        node = cfg
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not p.isdigit() or int(p) >= len(node):
                    raise ConfigError(f"-o {text}: {'.'.join(parts[:i])} is a list of {len(node)}; "
                                      f"{p!r} is not an index in it")
                p = int(p)
                if last:
                    node[p] = value
                else:
                    node = node[p]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"-o {text}: {'.'.join(parts[:i])} is a value, not a section")
            if last:
                node[p] = value
            else:
                if node.get(p) is None:
                    node[p] = {}
                node = node[p]
        keys.append(".".join(parts))
    return keys


def load_config(path_or_dict, overrides: Iterable[str] | None = None) -> Config:
    """Load a YAML file (or copy a dict), apply `-o` overrides and validate; raises ConfigError."""
    if isinstance(path_or_dict, Config):
        data, source = copy.deepcopy(dict(path_or_dict)), path_or_dict.source
    elif isinstance(path_or_dict, dict):
        data, source = copy.deepcopy(path_or_dict), "<dict>"
    elif isinstance(path_or_dict, (str, os.PathLike)):
        source = os.fspath(path_or_dict)
        data = _load_with_bases(source)
    else:
        raise ConfigError(f"a config is a YAML path or a dict, got {type(path_or_dict).__name__}")
    keys = apply_overrides(data, overrides or [])
    cfg = Config(data, source, keys)
    validate_config(cfg)
    return cfg


def require_sections(cfg: Config, sections: Iterable[str], purpose: str) -> None:
    """ConfigError unless `cfg` has every section `purpose` (e.g. "training") needs; an empty config is said to
    be empty, rather than surfacing as whatever default of a missing section happens to be checked first."""
    sections = list(sections)
    needed = (f"{purpose} needs the section{'s' if len(sections) > 1 else ''} {', '.join(sections)} "
              f"(e.g. configs/demo/hinet_synthetic.yml)")
    if not any(v is not None for v in cfg.values()):
        raise ConfigError(f"{cfg.source}: the config is empty; {needed}")
    missing = [s for s in sections if cfg.get(s) is None]
    if missing:
        raise ConfigError(f"{cfg.source}: no {', '.join(missing)} section{'s' if len(missing) > 1 else ''}; "
                          f"{needed}")


# ----------------------------------------------------------------------------------------------- validation
def _type_ok(value, default) -> bool:
    """Is `value` acceptable where the constructor's default is `default`?"""
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


def constructor_params(cls) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(cls.__init__)
    return {n: p for n, p in sig.parameters.items()
            if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def check_kwargs(cls, kwargs: dict, section: str, cfg: Config) -> None:
    """Check a typed section's keys against `cls`'s constructor: unknown keys and wrong types."""
    params = constructor_params(cls)
    for key, value in kwargs.items():
        dotted = f"{section}.{key}"
        if key not in params:
            hint = difflib.get_close_matches(key, params, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{cfg.origin(dotted)}: unknown key {dotted!r} for {cls.__name__}{extra}; "
                              f"allowed: {', '.join(params)}")
        default = params[key].default
        if not _type_ok(value, default):
            raise ConfigError(f"{cfg.origin(dotted)}: {dotted} must be {type(default).__name__} "
                              f"(like the default {default!r}), got {type(value).__name__} {value!r}")


def _import_registering_modules() -> None:
    import importlib

    for mod in _REGISTERING_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def _check_typed(cfg: Config, key: str, body, registry) -> None:
    """A typed entry at dotted `key`: a mapping with a known `type` and constructor keys of the right type."""
    if not isinstance(body, dict):
        raise ConfigError(f"{cfg.origin(key)}: {key} must be a mapping with a 'type'")
    if "type" not in body:
        raise ConfigError(f"{cfg.origin(key)}: {key} needs a 'type' (one of: {', '.join(registry.names())})")
    try:
        cls = registry.get(body["type"])
    except ConfigError as e:
        raise ConfigError(f"{cfg.origin(key + '.type')}: {key}.type: {e}") from None
    check_kwargs(cls, {k: v for k, v in body.items() if k != "type"}, key, cfg)


def _check_plain(cfg: Config, section: str, body, schema) -> None:
    import dataclasses

    if not isinstance(body, dict):
        raise ConfigError(f"{cfg.origin(section)}: section {section!r} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in body.items():
        dotted = f"{section}.{key}"
        if key not in fields:
            hint = difflib.get_close_matches(key, fields, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{cfg.origin(dotted)}: unknown key {dotted!r}{extra}; allowed: {', '.join(fields)}")
        f = fields[key]
        default = f.default if f.default is not dataclasses.MISSING else None
        if not _type_ok(value, default):
            raise ConfigError(f"{cfg.origin(dotted)}: {dotted} must be {type(default).__name__} "
                              f"(like the default {default!r}), got {type(value).__name__} {value!r}")


def validate_config(cfg: Config) -> None:
    from .registry import DATASETS, LOSSES, METRICS, MODELS, OPTIMIZERS, SCHEDULERS

    _import_registering_modules()
    for key in cfg:
        if key not in KNOWN_SECTIONS:
            hint = difflib.get_close_matches(key, KNOWN_SECTIONS, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{cfg.origin(key)}: unknown top-level key {key!r}{extra}; "
                              f"allowed: {', '.join(KNOWN_SECTIONS)}")
    single = {"model": MODELS, "loss": LOSSES, "optimizer": OPTIMIZERS, "lr_scheduler": SCHEDULERS}
    for section, registry in single.items():
        if cfg.get(section) is not None:
            _check_typed(cfg, section, cfg[section], registry)
    if cfg.get("datasets") is not None:
        if not isinstance(cfg["datasets"], dict):
            raise ConfigError(f"{cfg.origin('datasets')}: datasets must map names (train, val, ...) to datasets")
        for name, body in cfg["datasets"].items():
            if body is not None:
                _check_typed(cfg, f"datasets.{name}", body, DATASETS)
    if cfg.get("metrics") is not None:
        if not isinstance(cfg["metrics"], list):
            raise ConfigError(f"{cfg.origin('metrics')}: metrics must be a list of {{type: ...}} entries")
        for i, body in enumerate(cfg["metrics"]):
            _check_typed(cfg, f"metrics.{i}", body, METRICS)
    for section, schema in _SECTION_SCHEMAS.items():
        if cfg.get(section) is not None:
            _check_plain(cfg, section, cfg[section], schema)
