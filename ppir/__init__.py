"""ppir: MIRNet, HINet and MIMO-UNet image restoration in PaddlePaddle.

Public API::

    import ppir
    model = ppir.build_model("configs/hinet_sidd_0.5x.yml", overrides=["model.wf=16"])
    ppir.load_weights(model, "HINet-SIDD-0.5x.pth")   # .pdparams, official .pth/.pkl, .npz
"""
import contextlib as _contextlib
import io as _io
import os as _os
import sys as _sys
import warnings as _warnings

# `import paddle` pins OMP_NUM_THREADS to 1 when it is unset, which halves CPU speed on a 2-core machine;
# use every core unless the user chose otherwise. Paddle then prints a data-parallel warning about it on
# every start, which is swallowed below (anything else paddle prints on import is passed on).
_os.environ.setdefault("OMP_NUM_THREADS", str(_os.cpu_count() or 1))
_warnings.filterwarnings("ignore", message="No ccache found")
_buf = _io.StringIO()
with _contextlib.redirect_stderr(_buf):
    import paddle as _paddle  # noqa: F401
for _line in _buf.getvalue().splitlines():
    if "OMP_NUM_THREADS" not in _line:
        print(_line, file=_sys.stderr)

from .config import Config, load_config  # noqa: E402
from .errors import CheckpointError, ConfigError, DatasetError, ImageError, PPIRError  # noqa: E402
from .models import MODELS, count_parameters  # noqa: E402
from .weights import load_weights, save_weights  # noqa: E402

__version__ = "0.1.0"


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
    from .models.size_limit import check_model_size

    check_model_size(cfg["model"], cfg.source)  # absurd sizes refused before a weight is allocated
    return MODELS.build(cfg["model"], "model", cfg.source)


__all__ = ["build_model", "load_weights", "save_weights", "load_config", "Config", "count_parameters",
           "MODELS", "PPIRError", "ConfigError", "CheckpointError", "DatasetError", "ImageError", "__version__"]
