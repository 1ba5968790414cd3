"""Backends that run an exported (or dygraph) network, behind one tiny interface.

Every backend has ``run(nchw_float32) -> nchw_float32`` (the final restored image, unclipped) and a few
attributes the runner reports: ``name``, ``device``, ``precision``, ``threads``, ``details`` (a dict for the
benchmark report). Pre/post-processing and tiling live elsewhere (``pipeline``, ``tiling``), so a new
backend (an accelerator SDK, a server) only has to implement ``run``.

Requests the machine cannot serve (``--use_gpu`` without CUDA, TensorRT, an fp16/int8 precision that the
backend has no path for) raise ``BackendError`` with a one-line explanation instead of crashing.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import PPIRError
from .deploy_info import MODEL_FILENAME, PARAMS_FILENAME

PRECISIONS = ("fp32", "fp16", "int8")


class BackendError(PPIRError):
    """A backend cannot be created as asked (missing files, unavailable device or precision)."""


class Backend:
    name = "backend"
    device = "cpu"
    precision = "fp32"
    threads = 0
    fixed_shape: list | None = None  # [N, C, H, W] when the program only takes that shape

    def run(self, nchw: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

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

        config = paddle_infer.Config(model_file, params_file)
        if use_gpu:
            if not paddle.device.is_compiled_with_cuda() or paddle.device.cuda.device_count() < 1:
                raise BackendError("--use_gpu True: this Paddle build has no CUDA device available "
                                   "(CPU-only wheel or no GPU); run with --use_gpu False")
            config.enable_use_gpu(500, gpu_id)
            self.device = f"gpu:{gpu_id}"
            if self.tensorrt:
                if not hasattr(paddle_infer, "PrecisionType"):  # pragma: no cover
                    raise BackendError("--use_tensorrt True: this Paddle build has no TensorRT support")
                precision_mode = {"fp32": paddle_infer.PrecisionType.Float32,
                                  "fp16": paddle_infer.PrecisionType.Half,
                                  "int8": paddle_infer.PrecisionType.Int8}[self.precision]
                config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=1, min_subgraph_size=3,
                                              precision_mode=precision_mode, use_static=False,
                                              use_calib_mode=self.precision == "int8")
            elif self.precision != "fp32":
                raise BackendError(f"--precision {self.precision} on GPU needs --use_tensorrt True")
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
        self._input.reshape(list(x.shape))
        self._input.copy_from_cpu(x)
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
