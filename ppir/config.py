"""YAML configs: loading, `-o a.b=value` overrides and validation.

Every problem becomes one `ConfigError` whose message names the file (or the `-o` option) and the key,
so a CLI can print a single line instead of a traceback.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any, Iterable

import yaml

from .errors import ConfigError, quote
from .registry import DATASETS, LOSSES, METRICS, MODELS, OPTIMIZERS, SCHEDULERS, check_keys, did_you_mean
from .sections import SECTIONS

# Top-level sections a config may have. Typed sections hold a `type:` naming a class from a registry; their
# other keys are that class's constructor arguments and are checked against its signature. `datasets` maps a
# name (train, val, test_rain100h, ...) to a typed entry, `metrics` is a list of typed entries. Plain sections
# (train, val, export) are checked against their dataclass in `ppir.sections`. Both tables are read here, at
# validation time, so what is checked never depends on what the caller imported.
TYPED_SECTIONS = {"model": MODELS, "datasets": DATASETS, "loss": LOSSES, "optimizer": OPTIMIZERS,
                  "lr_scheduler": SCHEDULERS, "metrics": METRICS}
KNOWN_SECTIONS = (*TYPED_SECTIONS, *SECTIONS)


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
    check_expansion(data, path)
    return data


# YAML aliases share one node, so a few lines can stand for billions of values ("billion laughs"): anything that
# walks the config as a tree (validation, deepcopy of merged bases, messages) would take exponential time.
# A config is at most this many values when every alias is expanded; the count stops as soon as it is exceeded.
MAX_CONFIG_VALUES = 100_000


def check_expansion(data, source: str, limit: int = MAX_CONFIG_VALUES) -> None:
    """ConfigError when `data`, with every shared (aliased) node counted each time it appears, exceeds `limit`
    values. The walk stops at the limit, so its cost is bounded whatever the file."""
    count, stack = 0, [data]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            raise ConfigError(f"{source}: the config expands to more than {limit} values (YAML aliases of "
                              f"aliases?); refused")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)


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
        raise ConfigError(f"{path}: _base_ must be a file path, got {quote(base)}")
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
    if keys:  # an -o value is YAML too
        check_expansion(data, f"{source} with -o {', '.join(keys)}")
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
def _check_plain(cfg: Config, section: str, body, schema) -> None:
    if not isinstance(body, dict):
        raise ConfigError(f"{cfg.origin(section)}: section {section!r} must be a mapping")
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else None)
                for f in dataclasses.fields(schema)}
    check_keys(body, defaults, section, cfg.origin)


def validate_config(cfg: Config) -> None:
    """Check every section of `cfg`: known top-level keys, typed entries against their class's constructor
    (the registries load their classes themselves), plain sections against `ppir.sections`."""
    for key in cfg:
        if key not in KNOWN_SECTIONS:
            raise ConfigError(f"{cfg.origin(key)}: unknown top-level key {key!r}{did_you_mean(key, KNOWN_SECTIONS)}; "
                              f"allowed: {', '.join(KNOWN_SECTIONS)}")
    for section in ("model", "loss", "optimizer", "lr_scheduler"):
        if cfg.get(section) is not None:
            TYPED_SECTIONS[section].resolve(cfg[section], section, cfg.origin)
    if cfg.get("datasets") is not None:
        if not isinstance(cfg["datasets"], dict):
            raise ConfigError(f"{cfg.origin('datasets')}: datasets must map names (train, val, ...) to datasets")
        for name, body in cfg["datasets"].items():
            if body is not None:
                DATASETS.resolve(body, f"datasets.{name}", cfg.origin)
    if cfg.get("metrics") is not None:
        if not isinstance(cfg["metrics"], list):
            raise ConfigError(f"{cfg.origin('metrics')}: metrics must be a list of {{type: ...}} entries")
        for i, body in enumerate(cfg["metrics"]):
            METRICS.resolve(body, f"metrics.{i}", cfg.origin)
    for section, schema in SECTIONS.items():
        if cfg.get(section) is not None:
            _check_plain(cfg, section, cfg[section], schema)
