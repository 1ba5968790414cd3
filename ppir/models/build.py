"""`build_model`: the network a config describes (public as `ppir.build_model`)."""
from ..config import load_config
from ..errors import ConfigError
from ..registry import MODELS
from .size_limit import check_model_size


def build_model(config, overrides=None):
    """Build the network a config describes.

    `config` is a YAML path, a full config dict (with a `model:` section) or just a model section
    (`{"type": "HINet", "wf": 32}`); `overrides` are `-o`-style strings such as "model.wf=16".
    """
    if isinstance(config, dict) and "model" not in config and "type" in config:
        config = {"model": dict(config)}
    cfg = load_config(config, overrides)
    if "model" not in cfg:
        raise ConfigError(f"{cfg.source}: no 'model' section")
    check_model_size(cfg["model"], cfg.source)  # absurd sizes refused before a weight is allocated
    return MODELS.build(cfg["model"], "model", cfg.source)
