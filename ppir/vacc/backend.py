"""The VACC backend: a vamc-compiled model on a VastAI VACC card through vaststreamx, built by
``make_backend("vacc", model_prefix, ...)``, and the host-side facts the card's pre-processing shares with the
ONNX Runtime stand-in (`normalize`, `vdsp_params`).

``vaststreamx`` is imported lazily: the SDK is not on PyPI and comes with the card's driver, so a machine without
it gets one clear line naming it (`SDK_MISSING`), never an ImportError traceback.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from ..infer.backends import Backend, BackendError
from ..uint8 import to_uint8

SDK_MODULE = "vaststreamx"
SDK_MISSING = ("--backend vacc needs vaststreamx, the VastAI VACC runtime (VastStreamX, shipped with the card's "
               "driver in the VastStream SDK; it is not on PyPI), and it cannot be imported here{why}. Install the "
               "SDK's vaststreamx wheel on the machine with the card (see deploy/vacc/README.md), or check the "
               "same pipeline on CPU with --backend onnxruntime --model_prefix <model.onnx>")
MODEL_SUFFIXES = (".json", ".so", ".params")  # what `vamc compile` writes for a model prefix


def import_vaststreamx():
    """The vaststreamx module, or BackendError (one line naming the SDK) when it is not installed."""
    try:
        import vaststreamx  # noqa: F401 - optional, only on machines with the card
    except ImportError as e:
        why = "" if getattr(e, "name", None) == SDK_MODULE else f" ({e})"
        raise BackendError(SDK_MISSING.format(why=why)) from None
    return vaststreamx


def normalize(nchw_uint8: np.ndarray) -> np.ndarray:
    """uint8 -> float32 / 255: what the card's vdsp operator (NormaType DIV255) does on the device."""
    return nchw_uint8.astype(np.float32) / 255.0


def denormalize(nchw_float: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8 (nearest), exact for inputs that came from `normalize`."""
    return to_uint8(nchw_float)


def vdsp_params(height: int, width: int) -> dict:
    """The fused vdsp pre-processing operator for a compiled H x W: the host already resized to H x W and
    converted to RGB planar, so the card only divides by 255 (the resize is then an identity)."""
    return {"OpType": "FUSION_OP_RGB_RESIZE_CVTCOLOR_NORM_TENSOR",
            "OpConfig": {"IimageFormat": "RGB_PLANAR", "IimageWidth": width, "IimageHeight": height,
                         "OimageWidth": width, "OimageHeight": height, "IimageWidthPitch": width,
                         "IimageHeightPitch": height, "Mean": [0.0, 0.0, 0.0], "Std": [1.0, 1.0, 1.0],
                         "NormaType": "DIV255", "ColorCvtCode": "NO_CHANGE", "ResizeType": "BILINEAR_CV"}}


class VaccBackend(Backend):
    """A vamc-compiled model on a VACC card through vaststreamx (graph: vdsp DIV255 operator -> model).

    ``run_uint8`` takes 1 x 3 x H x W uint8 RGB (the vdsp operator normalizes on the card); ``run`` (the Backend
    interface, used by tiling) takes float in [0, 1] and converts it back to uint8 first.
    """

    name = "vacc"
    device = "vacc"
    precision = "compiled"

    def __init__(self, model_prefix: str, vdsp_json: str | None = None, device_id: int = 0, batch_size: int = 1):
        vsx = import_vaststreamx()
        missing = [model_prefix + s for s in MODEL_SUFFIXES if not os.path.isfile(model_prefix + s)]
        if missing:
            raise BackendError(f"--model_prefix {model_prefix}: {', '.join(missing)} missing; pass the prefix "
                               f"`vamc compile` wrote (e.g. deploy_weights/hinet_sidd_int8/mod)")
        self.vsx, self.device_id, self.batch_size = vsx, int(device_id), int(batch_size)
        if vsx.set_device(self.device_id) != 0:
            raise BackendError(f"vaststreamx cannot open VACC device {self.device_id} (is the driver loaded? "
                               f"see `vasmi list`)")
        try:
            self.model = vsx.Model(model_prefix, self.batch_size)
            shape = [int(d) for d in self.model.input_shape[0]]
        except Exception as e:  # noqa: BLE001 - the SDK's own errors, as one line
            raise BackendError(f"{model_prefix}: vaststreamx cannot load the model ({type(e).__name__}: {e})") from None
        c, h, w = shape[-3:]
        self.fixed_shape = [1, c, h, w]
        self._tmp = None
        if vdsp_json is None:  # generate the DIV255 operator for this shape
            fd, self._tmp = tempfile.mkstemp(prefix="vdsp_", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(vdsp_params(h, w), f)
            vdsp_json = self._tmp
        elif not os.path.isfile(vdsp_json):
            raise BackendError(f"--vdsp_params {vdsp_json}: no such file")
        self.fusion_op = vsx.Operator.load_ops_from_json_file(vdsp_json)[0]
        self.model_op = vsx.ModelOperator(self.model)
        self.graph = vsx.Graph()
        self.graph.add_operators(self.fusion_op, self.model_op)
        self.stream = vsx.Stream(self.graph, vsx.StreamBalanceMode.ONCE)
        self.stream.register_operator_output(self.model_op)
        self.stream.build()
        self.threads = 0

    def run_uint8(self, nchw_uint8: np.ndarray) -> np.ndarray:
        n, c, h, w = nchw_uint8.shape
        if [c, h, w] != self.fixed_shape[1:]:
            raise ValueError(f"the compiled model takes {self.fixed_shape[1:]} inputs, got {[c, h, w]}")
        outs = []
        for chw in nchw_uint8:
            image = self.vsx.create_image(np.ascontiguousarray(chw, np.uint8), self.vsx.ImageFormat.RGB_PLANAR,
                                          w, h, self.device_id)
            result = self.stream.run_sync([image])
            y = self.vsx.as_numpy(result[0][0]).astype(np.float32)
            outs.append(y.reshape(1, -1, h, w))
        return np.concatenate(outs)

    def run(self, nchw: np.ndarray) -> np.ndarray:
        return self.run_uint8(denormalize(nchw))

    def close(self) -> None:
        try:
            self.stream.close_input()
            self.stream.wait_until_done()
        finally:
            if self._tmp and os.path.exists(self._tmp):
                os.remove(self._tmp)

    @property
    def details(self) -> dict:
        return {**super().details, "device_id": self.device_id}
