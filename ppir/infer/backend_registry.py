"""The one list of backend kinds: each kind's name, its options dataclass, its builder and where it is offered.

`KINDS` is the only place a kind is named. Every ``--backend`` ``choices=``, the ``val.backend`` check in
`ppir.sections`, `make_backend`'s checks and the docs' list read it. This module stays light (no numpy, no
paddle): the config check and ``--help`` read it without loading a runtime; a builder is imported only when
`build` is called.

Adding a kind: a Backend subclass and a builder ``f(source, info, options, notes) -> Backend`` (in
`ppir.infer.backends` or a module of its own), an options dataclass here, and one `BackendKind` entry in `KINDS`
(CONTRIBUTING.md, "How to add a backend").
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Mapping

from ..errors import PPIRError

# where a kind is offered; a kind lists the ones it serves
NETWORK = "network"  # restores a paddle.nn.Layer in this process: --backend of predict/eval, val.backend, Restorer
EXPORT = "export"    # runs an export folder: infer.py / infer_onnx.py (TIPC), ppir serve
VACC = "vacc"        # runs the VACC pipeline's fixed-shape model: tools/vacc_infer.py --backend


class BackendError(PPIRError):
    """A backend cannot be created as asked (unknown kind or option, missing files, unavailable device or
    precision)."""


# ------------------------------------------------------------------------------------------ options per kind
@dataclass(frozen=True)
class DygraphOptions:
    threads: int | None = None             # CPU math threads (None: all cores)


@dataclass(frozen=True)
class PaddleOptions:
    use_gpu: bool = False
    threads: int | None = None             # CPU math threads (None: all cores)
    enable_mkldnn: bool | None = None      # oneDNN; None: off for an export folder, on for a compiled network
    precision: str = "fp32"                # fp16/int8 need the GPU + TensorRT path
    model_file: str | None = None          # replaces the export's inference.json
    params_file: str | None = None         # replaces the export's inference.pdiparams
    use_tensorrt: bool = False
    gpu_id: int = 0


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    use_gpu: bool = False
    threads: int | None = None             # intra-op threads (None: all cores)
    precision: str = "fp32"                # checked against the model file's own precision
    model_file: str | None = None          # replaces the export's model.onnx
    use_tensorrt: bool = False
    check_precision: bool = True           # False: take the file's precision without reading its nodes


@dataclass(frozen=True)
class VaccOptions:
    vdsp_params: str | None = None         # the vdsp operator's JSON (None: a DIV255 operator for the shape)
    device_id: int = 0
    batch_size: int = 1


# ------------------------------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class BackendKind:
    name: str
    options: type        # the dataclass of its settings
    builder: str         # "module:function"; function(source, info, options, notes) -> Backend
    offered: tuple       # NETWORK / EXPORT / VACC: the tools that offer it
    summary: str         # one line for --help and the docs

    def build(self, source, info, options, notes):
        module, _, function = self.builder.partition(":")
        return getattr(importlib.import_module(module), function)(source, info, options, notes)


_BACKENDS = "ppir.infer.backends"
KINDS = (
    BackendKind("auto", PaddleOptions, f"{_BACKENDS}:build_auto", (NETWORK,),
                "a network: compiled for Paddle Inference + oneDNN on CPU, dygraph on a GPU or when that fails"),
    BackendKind("dygraph", DygraphOptions, f"{_BACKENDS}:build_dygraph", (NETWORK,),
                "a network in dygraph mode (no export, no compile)"),
    BackendKind("paddle", PaddleOptions, f"{_BACKENDS}:build_paddle", (NETWORK, EXPORT),
                "Paddle Inference (oneDNN on/off, TensorRT on a GPU) on an export, or a network compiled for it"),
    BackendKind("onnxruntime", OnnxRuntimeOptions, f"{_BACKENDS}:build_onnxruntime", (NETWORK, EXPORT, VACC),
                "ONNX Runtime on an export's model.onnx (or any .onnx), or a network compiled for it"),
    BackendKind("vacc", VaccOptions, f"{_BACKENDS}:build_vacc", (VACC,),
                "a vamc-compiled model on a VastAI VACC card through vaststreamx"),
)
_BY_NAME = {k.name: k for k in KINDS}


def names(offered: str | None = None) -> tuple[str, ...]:
    """Every kind's name, or the names of the kinds offered where `offered` says (NETWORK, EXPORT, VACC)."""
    return tuple(k.name for k in KINDS if offered is None or offered in k.offered)


def kind(name: str) -> BackendKind:
    if name not in _BY_NAME:
        raise BackendError(f"unknown backend {name!r}; choose from {', '.join(names())}")
    return _BY_NAME[name]


def options_for(name: str, options=None):
    """`name`'s options dataclass from a dict (unknown keys: one-line BackendError naming them and the known
    ones), None (all defaults) or an instance of it (as is)."""
    cls = kind(name).options
    if isinstance(options, cls):
        return options
    if options is not None and not isinstance(options, Mapping):
        raise BackendError(f"backend {name}: options must be a {cls.__name__} or a dict, "
                           f"got {type(options).__name__}")
    options = dict(options or {})
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise BackendError(f"backend {name} has no option {', '.join(unknown)} (it takes {', '.join(known)})")
    return cls(**options)


def option_names(name: str) -> tuple[str, ...]:
    """The fields of `name`'s options dataclass (for a command line whose flags serve several kinds)."""
    return tuple(f.name for f in dataclasses.fields(kind(name).options))
