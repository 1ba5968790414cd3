"""ppir: MIRNet, HINet and MIMO-UNet image restoration in PaddlePaddle.

Public API::

    import ppir
    restorer = ppir.Restorer("configs/hinet_sidd_1x.yml", "HINet-SIDD-1x.pth")
    out = restorer(img)                                # HxWx3 uint8 (or float in [0, 1]) numpy image

    model = ppir.build_model("configs/hinet_sidd_0.5x.yml", overrides=["model.wf=16"])
    ppir.load_weights(model, "HINet-SIDD-0.5x.pth")   # .pdparams, official .pth/.pkl, .npz

`import ppir` loads no Paddle: the public names are looked up on first use (PEP 562), and Paddle loads (through
ppir._paddle, which sets the environment it reads) only when one of them needs it. So `ppir --help` is quick.
"""
import importlib as _importlib

from .errors import CheckpointError, ConfigError, DatasetError, ImageError, PPIRError

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first access)
_LAZY = {
    "Restorer": "ppir.infer.api",
    "build_model": "ppir.models.build",
    "load_weights": "ppir.weights",
    "save_weights": "ppir.weights",
    "load_config": "ppir.config",
    "Config": "ppir.config",
    "count_parameters": "ppir.models.common",
    "MODELS": "ppir.registry",
}

__all__ = ["Restorer", "build_model", "load_weights", "save_weights", "load_config", "Config", "count_parameters",
           "MODELS", "PPIRError", "ConfigError", "CheckpointError", "DatasetError", "ImageError", "__version__"]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'ppir' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
