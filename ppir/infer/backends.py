"""Backends that run a network (dygraph, exported, or compiled for a VACC card) behind one tiny interface, their
builders, and `make_backend`, the one factory every runner, the server, the quantization report, the export
checks and the benchmarks use.

Every backend has ``run(nchw_float32) -> nchw_float32`` (the final restored image, unclipped), ``close()``
(no-op unless it holds a device or a file) and a few attributes the runner reports: ``name``, ``device``,
``precision``, ``threads``, ``details`` (a dict for the benchmark report). Pre/post-processing and tiling live
elsewhere (``pipeline``, ``tiling``). The kinds, their options and where each is offered are listed once, in
`ppir.infer.backend_registry`; a tool offers a new kind when its `offered` names that tool's role (CONTRIBUTING.md,
"How to add a backend").

Requests the machine cannot serve (``--use_gpu`` without CUDA, TensorRT, an fp16/int8 precision that the
backend has no path for) raise ``BackendError`` with a one-line explanation instead of crashing.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import tempfile
import time
from typing import Callable

import numpy as np

from . import backend_registry as registry
from .backend_registry import BackendError, DygraphOptions, OnnxRuntimeOptions, PaddleOptions, VaccOptions
from .deploy_info import MODEL_FILENAME, ONNX_DIGEST_KEY, ONNX_FILENAME, PARAMS_FILENAME
from .math_threads import kept_math_threads
from .pipeline import padded_size

PRECISIONS = ("fp32", "fp16", "int8")


class Backend:
    name = "backend"
    device = "cpu"
    precision = "fp32"
    threads = 0
    fixed_shape: list | None = None  # [N, C, H, W] when the program only takes that shape

    def run(self, nchw: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend holds outside Python's memory (a device stream, a temporary file); the
        default holds nothing. Callers close every backend they built."""

    @property
    def details(self) -> dict:
        return {"runtime_device": self.device, "precision": self.precision,
                "cpu_math_library_num_threads": self.threads}


def _check_precision(precision: str) -> str:
    precision = str(precision).lower()
    if precision not in PRECISIONS:
        raise BackendError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def _threads(cpu_threads) -> int:
    return int(cpu_threads) if cpu_threads and int(cpu_threads) > 0 else (os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------------- dygraph
class DygraphBackend(Backend):
    """A paddle.nn.Layer in dygraph mode (for checks and benchmarks; no export needed)."""

    name = "dygraph"

    def __init__(self, model, threads: int | None = None):
        from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
        import paddle

        self.model = model
        self.model.eval()
        self.threads = _threads(threads)
        self.device = paddle.device.get_device()

    def run(self, nchw: np.ndarray) -> np.ndarray:
        from .dygraph import run_network

        return run_network(self.model, nchw)


# ------------------------------------------------------------------------------------- Paddle Inference
class PaddleInferenceBackend(Backend):
    """paddle.inference predictor on `<model_dir>/inference.json` + `.pdiparams`.

    oneDNN on and off both work for ppir's networks (they avoid the ops oneDNN breaks in Paddle 3.3.1);
    `enable_memory_optim` is never called (it breaks predictor creation for PIR programs).
    """

    name = "paddle_inference"

    def __init__(self, model_dir: str, info=None, use_gpu: bool = False, enable_mkldnn: bool = False,
                 cpu_threads: int | None = None, use_tensorrt: bool = False, precision: str = "fp32",
                 model_file: str | None = None, params_file: str | None = None, gpu_id: int = 0):
        from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
        import paddle
        import paddle.inference as paddle_infer

        self.precision = _check_precision(precision)
        model_file = model_file or os.path.join(model_dir, info.model_file if info else MODEL_FILENAME)
        params_file = params_file or os.path.join(model_dir, info.params_file if info else PARAMS_FILENAME)
        for path in (model_file, params_file):
            if not os.path.isfile(path):
                raise BackendError(f"{path}: no such file; export the model with tools/export_model.py")
        self.fixed_shape = info.fixed_shape if info else None
        self.input_name = info.input_name if info else "x"
        self.mkldnn = bool(enable_mkldnn) and not use_gpu
        self.tensorrt = bool(use_tensorrt)
        self.threads = _threads(cpu_threads)

        self.trt_range = None  # (min, opt, max) input shapes of the TensorRT engine, when there is one
        if use_gpu:
            if not paddle.device.is_compiled_with_cuda() or paddle.device.cuda.device_count() < 1:
                raise BackendError("--use_gpu True: this Paddle build has no CUDA device available "
                                   "(CPU-only wheel or no GPU); run with --use_gpu False")
            if self.tensorrt:
                # PIR programs get TensorRT through paddle.tensorrt.convert (ppir.infer.tensorrt), with the
                # shape range inference.yml implies; the converted program lives as long as this backend
                from . import tensorrt as trt
                from .deploy_info import read_deploy_info

                trt_info = info or read_deploy_info(model_dir)
                self._trt_dir = tempfile.TemporaryDirectory(prefix="ppir_tensorrt_")
                try:
                    model_file, params_file = trt.convert(model_file, trt_info, self.precision, self._trt_dir.name)
                except trt.TensorRTUnavailable as e:
                    raise BackendError(str(e)) from None
                self.trt_range = trt.shape_range(trt_info)
            elif self.precision != "fp32":
                raise BackendError(f"--precision {self.precision} on GPU needs --use_tensorrt True")
            config = paddle_infer.Config(model_file, params_file)
            config.enable_use_gpu(500, gpu_id)
            self.device = f"gpu:{gpu_id}"
        else:
            if self.tensorrt:
                raise BackendError("--use_tensorrt True needs --use_gpu True and a CUDA build of Paddle "
                                   "with TensorRT; this run is on CPU")
            if self.precision == "fp16":
                raise BackendError("--precision fp16: Paddle Inference has no fp16 path on CPU; use fp32 "
                                   "(fp16 needs --use_gpu True --use_tensorrt True)")
            if self.precision == "int8":
                raise BackendError("--precision int8: Paddle Inference on CPU needs a quantized program, which "
                                   "Paddle 3.3.1 cannot produce for PIR exports; use fp32, or "
                                   "deploy/onnxruntime/infer.py --model_file <int8 .onnx>")
            config = paddle_infer.Config(model_file, params_file)
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(self.threads)
            if self.mkldnn:
                config.enable_mkldnn()
                config.set_mkldnn_cache_capacity(10)
            else:
                config.disable_mkldnn()
            self.device = "cpu"
        config.disable_glog_info()
        config.switch_ir_optim(True)
        try:
            with kept_math_threads():  # creating a predictor sets them to its own count, process-wide
                self.predictor = paddle_infer.create_predictor(config)
        except Exception as e:  # noqa: BLE001 - a broken program is the user's file, not our bug
            msg = str(e).strip().splitlines()
            raise BackendError(f"{model_file}: Paddle Inference cannot load the program with "
                               f"{os.path.basename(params_file)} ({type(e).__name__}: {msg[0] if msg else ''})") \
                from None
        names = self.predictor.get_input_names()
        if self.input_name not in names:
            self.input_name = names[0]
        self._input = self.predictor.get_input_handle(self.input_name)
        self._output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def run(self, nchw: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(nchw, dtype=np.float32)
        if self.trt_range is not None:
            from .tensorrt import TensorRTUnavailable, check_in_range

            try:
                check_in_range(x.shape, self.trt_range)
            except TensorRTUnavailable as e:
                raise BackendError(str(e)) from None
        self._input.reshape(list(x.shape))
        self._input.copy_from_cpu(x)
        with kept_math_threads():  # the predictor leaves MKL/OpenMP at 1 thread for the whole process
            self.predictor.run()
        return self._output.copy_to_cpu()

    @property
    def details(self) -> dict:
        return {**super().details, "ir_optim": True, "enable_memory_optim": False,
                "enable_tensorrt": self.tensorrt, "enable_mkldnn": self.mkldnn}


# ----------------------------------------------------------------------------------------- ONNX Runtime
def read_onnx_model(path: str):
    """The onnx.ModelProto in `path`; BackendError naming the file when it cannot be read or parsed
    (a truncated or corrupt file makes protobuf raise DecodeError, which must not become a traceback)."""
    import onnx

    try:
        return onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - DecodeError, OSError, onnx's own errors: all mean a bad file
        msg = str(e).strip().splitlines()
        raise BackendError(f"{path}: not a readable ONNX model ({type(e).__name__}: {msg[0][:200] if msg else ''}); "
                           f"convert the export again with tools/export_onnx.py") from None


def onnx_model_precision(path: str) -> str:
    """'int8' when the ONNX model holds quantization nodes, 'fp16' when its weights are half, else 'fp32'."""
    import onnx

    model = read_onnx_model(path)
    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"}:
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


class OnnxRuntimeBackend(Backend):
    """onnxruntime.InferenceSession on `model.onnx` (CPU; the CUDA provider with --use_gpu when installed).

    The precision is the model file's: fp32 from tools/export_onnx.py, int8/fp16 from a quantized or
    converted file passed as `model_file` (e.g. by tools/quant_report.py); `precision` is checked against it.
    """

    name = "onnxruntime"

    def __init__(self, model_file: str, info=None, use_gpu: bool = False, cpu_threads: int | None = None,
                 use_tensorrt: bool = False, precision: str = "fp32", enable_mkldnn: bool = False,
                 check_precision: bool = True):
        import onnxruntime as ort

        self.precision = _check_precision(precision)
        if not os.path.isfile(model_file):
            raise BackendError(f"{model_file}: no such ONNX model; convert the export with tools/export_onnx.py")
        if check_precision:
            actual = onnx_model_precision(model_file)
            if self.precision != "fp32" and actual != self.precision:
                raise BackendError(f"--precision {self.precision}, but {model_file} is an {actual} model; pass "
                                   f"a {self.precision} model with --model_file (e.g. from tools/quant_report.py)")
            self.precision = actual  # the file decides; fp32 (the TIPC default) accepts any model
        self.fixed_shape = info.fixed_shape if info else None
        self.threads = _threads(cpu_threads)
        available = ort.get_available_providers()
        if use_tensorrt:
            if "TensorrtExecutionProvider" not in available:
                raise BackendError("--use_tensorrt True: this onnxruntime has no TensorRT provider "
                                   f"(available: {', '.join(available)})")
            providers = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
        elif use_gpu:
            if "CUDAExecutionProvider" not in available:
                raise BackendError("--use_gpu True: this onnxruntime has no CUDA provider (install "
                                   f"onnxruntime-gpu; available: {', '.join(available)}); run with --use_gpu False")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(model_file, sess_options=opts, providers=providers)
        except Exception as e:  # noqa: BLE001
            msg = str(e).strip().splitlines()
            raise BackendError(f"{model_file}: ONNX Runtime cannot load the model "
                               f"({type(e).__name__}: {msg[0][:300] if msg else ''})") from None
        self.device = "gpu" if providers[0] != "CPUExecutionProvider" else "cpu"
        self.providers = self.session.get_providers()
        self.input_name = self.session.get_inputs()[0].name
        self.tensorrt = bool(use_tensorrt)
        self.mkldnn = False  # reported; ONNX Runtime's CPU provider uses its own kernels

    def run(self, nchw: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(nchw, dtype=np.float32)
        return self.session.run(None, {self.input_name: x})[0]

    @property
    def details(self) -> dict:
        return {**super().details, "ir_optim": True, "enable_memory_optim": False,
                "enable_tensorrt": self.tensorrt, "enable_mkldnn": False,
                "providers": ",".join(self.providers)}


# ----------------------------------------------------------------------------------------------- builders
# One per kind, named in `backend_registry.KINDS`: builder(source, info, options, notes) -> Backend, `options` the
# kind's own dataclass. "paddle" and "onnxruntime" take an export folder or a paddle.nn.Layer (then compiled in
# this process); "auto" chooses for a Layer.
def build_dygraph(source, info, o: DygraphOptions, notes):
    return DygraphBackend(source, threads=o.threads)


def build_paddle(source, info, o: PaddleOptions, notes):
    if not isinstance(source, (str, os.PathLike)):
        return _compiled("paddle", source, info, o, notes)
    return PaddleInferenceBackend(source, info, use_gpu=o.use_gpu, enable_mkldnn=bool(o.enable_mkldnn),
                                  cpu_threads=o.threads, use_tensorrt=o.use_tensorrt, precision=o.precision,
                                  model_file=o.model_file, params_file=o.params_file, gpu_id=o.gpu_id)


def build_onnxruntime(source, info, o: OnnxRuntimeOptions, notes):
    if not isinstance(source, (str, os.PathLike)):
        return _compiled("onnxruntime", source, info, o, notes)
    model_file = o.model_file or os.path.join(source, ONNX_FILENAME)
    backend = OnnxRuntimeBackend(model_file, info, use_gpu=o.use_gpu, cpu_threads=o.threads,
                                 use_tensorrt=o.use_tensorrt, precision=o.precision,
                                 check_precision=o.check_precision)
    _check_onnx_stamp(backend, model_file, source, info)
    return backend


def _check_onnx_stamp(backend, model_file, model_dir, info) -> None:
    """BackendError when the ONNX model was not converted from the export's program (inference.yml's digest):
    e.g. a model.onnx left from an earlier export in a folder exported again, which would otherwise run the old
    network silently. An unstamped file passed by name (a quantized copy, one converted by hand) is taken as
    given, as is any model beside an inference.yml older than digests."""
    if info is None or not info.program_digest:
        return
    stamp = backend.session.get_modelmeta().custom_metadata_map.get(ONNX_DIGEST_KEY, "")
    own = os.path.join(model_dir, ONNX_FILENAME)
    is_own = os.path.exists(own) and os.path.samefile(own, model_file)
    if stamp == info.program_digest or (not stamp and not is_own):
        return
    why = ("carries no program digest" if not stamp else
           "was converted from another program (its digest is not inference.yml's program.digest)")
    raise BackendError(f"{model_file} {why}: it is not the export's network in {model_dir} (a model.onnx left from "
                       f"an earlier export?); convert it again: ppir export-onnx --model_dir {model_dir}")


def build_vacc(source, info, o: VaccOptions, notes):
    # VACC lives in its own package (ppir.vacc.backend), whose backend builds on this module's Backend: imported by
    # module path when used (no import cycle), as the registry names builders
    return importlib.import_module("ppir.vacc.backend").VaccBackend(source, o.vdsp_params, o.device_id, o.batch_size)


def compiled_name(kind: str, enable_mkldnn: bool) -> str:
    """How a compiled backend is named to users: "Paddle Inference + oneDNN", "ONNX Runtime"."""
    return {"paddle": "Paddle Inference" + (" + oneDNN" if enable_mkldnn else ""), "onnxruntime": "ONNX Runtime"}[kind]


def _compiled(kind, model, info, o, notes):
    """`kind` on a paddle.nn.Layer: compiled in-process into a private temporary folder (`compile.compiled_folder`,
    gone once the predictor or session is built), then built by the kind's own builder from that folder. oneDNN
    is on unless enable_mkldnn=False. The build time is told once through `notes`."""
    from .compile import compiled_folder
    from .deploy_info import ExportError
    from .dygraph import model_info  # imports paddle: only where a network is compiled

    # the program compiled here is the network's own: no export's digest applies to it
    info = dataclasses.replace(info, program_digest="") if info else model_info(model)
    mkldnn = getattr(o, "enable_mkldnn", None) is not False
    o = dataclasses.replace(o, model_file=None, **({"enable_mkldnn": mkldnn, "params_file": None}
                                                    if kind == "paddle" else {}))
    what = compiled_name(kind, mkldnn and not o.use_gpu)
    name = type(model).__name__
    start = time.perf_counter()
    try:
        with compiled_folder(model, info, onnx=kind == "onnxruntime") as folder:
            backend = registry.kind(kind).build(folder, info, o, notes)
    except (ExportError, BackendError) as e:
        raise BackendError(f"cannot compile {name} for {what}: {e}") from None
    except Exception as e:  # noqa: BLE001 - to_static and the predictors raise anything; users get one line
        why = (str(e).strip().splitlines() or [""])[0]
        raise BackendError(f"cannot compile {name} for {what}: {type(e).__name__}: {why[:300]}") from None
    backend.build_seconds = time.perf_counter() - start
    notes(f"compiled {name} for {what} in {backend.build_seconds:.1f} s")
    return backend


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


KINDS = registry.names()
MODEL_KINDS = registry.names(registry.NETWORK)  # what --backend offers for a network (predict, eval) and val.backend


def add_backend_arg(parser) -> None:
    """--backend for the tools that restore with a network from a config (predict, eval)."""
    parser.add_argument("--backend", choices=MODEL_KINDS, default="auto",
                        help="how the network runs: auto (default: compiled in this process for Paddle Inference + "
                             "oneDNN on CPU, dygraph on a GPU or when compiling fails, with a note), dygraph, or "
                             "compiled for paddle (Paddle Inference + oneDNN) or onnxruntime; no export step")


def auto_compiles(use_gpu: bool = False) -> bool:
    """Whether "auto" compiles a network here: on CPU only (on a GPU it runs dygraph: compiled GPU programs are
    not checked against dygraph yet)."""
    from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
    import paddle

    return not use_gpu and paddle.device.get_device().startswith("cpu")


def build_auto(source, info, o: PaddleOptions, notes):
    """The fastest correct backend for a network: on CPU Paddle Inference + oneDNN compiled in-process, dygraph
    (with one `note:` line saying why) when that cannot be built; on a GPU dygraph (`auto_compiles`)."""
    if isinstance(source, (str, os.PathLike)):
        raise BackendError("backend auto chooses for a network (paddle.nn.Layer); for an export folder "
                           "choose paddle or onnxruntime")
    dygraph = DygraphOptions(threads=o.threads)
    if not auto_compiles(o.use_gpu):
        return build_dygraph(source, info, dygraph, notes)
    try:
        return _compiled("paddle", source, info, o, notes)
    except Exception as e:  # noqa: BLE001 - any failure to compile leaves the always-working dygraph path
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        notes(f"note: {why[:300]}; using dygraph")
        return build_dygraph(source, info, dygraph, notes)


def make_backend(kind: str, source, info=None, options=None,
                 notes: Callable[[str], object] | None = None) -> Backend:
    """The backend of `kind` (a name in `backend_registry.KINDS`) on `source`: a paddle.nn.Layer ("dygraph";
    "paddle" and "onnxruntime" compile it in-process; "auto" picks, see `build_auto`), an export folder ("paddle",
    "onnxruntime"; `model_file`/`params_file` replace its default files) or a vamc model prefix ("vacc").
    `options` are the kind's: its options dataclass, or a dict of its fields (an unknown key is a one-line
    BackendError), None for the defaults. `info` is the export's DeployInfo where there is one (for a Layer:
    `dygraph.model_info(model)` by default). oneDNN (`enable_mkldnn`) is off for an export folder and on for a
    compiled network unless given. `notes` hears the one-line build report or fallback note (default: stderr).
    BackendError (one line) when it cannot be built."""
    entry = registry.kind(kind)
    return entry.build(source, info, registry.options_for(kind, options), notes or _stderr)


def warmup_input(info, side: int = 1) -> np.ndarray:
    """A zero input of at least `side` x `side`, padded to the network's size rules (or the fixed shape)."""
    m = padded_size(side, info.size_multiple, info.min_size)
    return np.zeros(info.fixed_shape or [1, info.in_channels, m, m], np.float32)


def warm_up(backend: Backend, info, runs: int = 1, side: int = 1) -> None:
    """`runs` untimed calls on `warmup_input(info, side)`: absorbs one-time work (oneDNN's kernel selection, the
    CUDA context, ORT's allocations) before anything is timed or served. Exceptions pass through; the caller
    words them for its users."""
    x = warmup_input(info, side)
    for _ in range(runs):
        backend.run(x)
