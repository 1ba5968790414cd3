"""`ppir.infer.backends.make_backend`, the one factory every runner, the server, the quantization report and the
export checks build their backends with: each kind, its one-line refusals, and the shared warm-up."""
import os
import subprocess
import sys

import numpy as np
import pytest

from ppir.infer.backends import (KINDS, Backend, BackendError, DygraphBackend, OnnxRuntimeBackend,
                                 PaddleInferenceBackend, make_backend, warm_up)
from ppir.infer.deploy_info import DeployInfo, read_deploy_info

from conftest import REPO, tiny_hinet


@pytest.fixture(scope="module")
def export_dir(tiny_hinet_export):
    return tiny_hinet_export


def test_every_kind_from_one_factory(export_dir):
    assert KINDS == ("auto", "dygraph", "paddle", "onnxruntime", "vacc")
    info = read_deploy_info(export_dir)
    model = tiny_hinet()
    x = np.random.default_rng(0).random((1, 3, 32, 48), dtype=np.float32)
    dyg = make_backend("dygraph", model, options={"threads": 1})
    pdi = make_backend("paddle", export_dir, info, {"threads": 1})
    ort = make_backend("onnxruntime", export_dir, info, {"threads": 1})
    assert isinstance(dyg, DygraphBackend) and isinstance(pdi, PaddleInferenceBackend)
    assert isinstance(ort, OnnxRuntimeBackend) and ort.threads == 1
    ref = dyg.run(x)
    assert np.abs(pdi.run(x) - ref).max() < 1e-5 and np.abs(ort.run(x) - ref).max() < 1e-4
    # model_file replaces the folder's default program (what quant_report's int8/fp16 files use)
    alt = make_backend("onnxruntime", "/nonexistent", info, {"model_file": os.path.join(export_dir, "model.onnx")})
    assert np.array_equal(alt.run(x), ort.run(x))


def test_refusals_are_one_line(tmp_path):
    with pytest.raises(BackendError, match="unknown backend 'tensorflow'; choose from auto, dygraph, paddle"):
        make_backend("tensorflow", str(tmp_path))
    with pytest.raises(BackendError, match="inference.json: no such file"):
        make_backend("paddle", str(tmp_path))
    with pytest.raises(BackendError, match="model.onnx: no such ONNX model"):
        make_backend("onnxruntime", str(tmp_path))
    with pytest.raises(BackendError, match="--precision must be one of"):
        make_backend("onnxruntime", str(tmp_path), options={"precision": "int4"})


def test_vacc_kind_without_the_sdk_names_it(tmp_path):
    """In a fresh interpreter where vaststreamx cannot be imported, the vacc kind says which SDK is missing."""
    code = ("import sys; sys.modules['vaststreamx'] = None\n"
            "from ppir.infer.backends import make_backend, BackendError\n"
            "try:\n    make_backend('vacc', sys.argv[1])\nexcept BackendError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "mod")], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert "--backend vacc needs vaststreamx" in r.stdout, r.stdout + r.stderr


def test_warm_up_feeds_the_smallest_valid_input():
    class Spy(Backend):
        def __init__(self):
            self.shapes = []

        def run(self, x):
            self.shapes.append(x.shape)
            return x

    spy = Spy()
    warm_up(spy, DeployInfo(model_name="M", size_multiple=16, min_size=32, in_channels=1), runs=2, side=40)
    assert spy.shapes == [(1, 1, 48, 48)] * 2  # 40 padded to a multiple of 16
    spy = Spy()
    warm_up(spy, DeployInfo(model_name="M", input_shape=[2, 3, 64, 96]), runs=1)
    assert spy.shapes == [(2, 3, 64, 96)]  # a fixed-shape program gets its own shape
