"""Paddle Inference on the device (and TensorRT fp32/fp16 where the wheel has it) against dygraph on the CPU, with
dynamic shapes (one predictor, several sizes) and tiles.

Tolerances: the export tolerance, max |a - b| / max |b| < 1e-5 (tests/test_export.py), on CPU; 1e-4 on a GPU
for the reasons test_forward.py gives. TensorRT fp32 may pick kernels that reorder sums more: 1e-3. TensorRT
fp16 is judged like the quantization report judges fp16 (tests/test_quant_report.py): the 8-bit outputs within
a mean squared change of 2 levels^2 (45.1 dB) of float32's.
"""
import os

import numpy as np
import pytest

import ppir
from ppir.export import export_model, max_rel_diff, read_deploy_info
from ppir.infer.backends import DygraphBackend, PaddleInferenceBackend
from ppir.infer.tiling import run_tiled

from conftest import golden_file

SMALL = {  # config, overrides, golden weights (as tests/test_export.py)
    "hinet": ("hinet_sidd_0.5x.yml", ["model.wf=8"], "hinet_wf8_perturbed.npz"),
    "mimo_unet": ("mimo_unet_gopro.yml", ["model.num_res=1"], "mimo_unet_nr1.npz"),
    "mirnet": ("mirnet_sidd.yml", ["model.n_feat=8", "model.n_RRG=1", "model.n_MSRB=1"], "mirnet_f8_rrg1_msrb1.npz"),
}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZES = [(48, 80), (64, 32), (96, 96)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import paddle

    paddle.set_device("cpu")
    out = {}
    for name, (config, overrides, golden) in SMALL.items():
        model = ppir.build_model(os.path.join(REPO, "configs", config), overrides)
        ppir.load_weights(model, golden_file(golden))
        model.eval()
        folder = str(tmp_path_factory.mktemp(f"gpu_export_{name}"))
        export_model(model, folder)
        out[name] = (DygraphBackend(model), folder)
    return out


def inputs():
    rng = np.random.default_rng(0)
    return [rng.random((1, 3, h, w), dtype=np.float32) for h, w in SIZES]


def tolerance(device):
    return 1e-5 if device == "cpu" else 1e-4


@pytest.mark.parametrize("name", sorted(SMALL))
def test_paddle_inference_matches_dygraph_with_dynamic_shapes_and_tiles(device, exported, name):
    cpu_net, folder = exported[name]
    backend = PaddleInferenceBackend(folder, read_deploy_info(folder), use_gpu=device != "cpu", cpu_threads=2)
    assert backend.device == ("cpu" if device == "cpu" else "gpu:0")
    tol = tolerance(device)
    for x in inputs():  # one predictor, several sizes
        assert max_rel_diff(backend.run(x), cpu_net.run(x)) < tol, x.shape
    x = inputs()[-1]
    tiled = run_tiled(backend.run, x, 48, 16, multiple=16, min_size=16)
    assert tiled.shape == x.shape
    assert max_rel_diff(tiled, run_tiled(cpu_net.run, x, 48, 16, multiple=16, min_size=16)) < tol


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_tensorrt_matches_dygraph(gpu_only, exported, name, precision):
    """TensorRT through paddle.tensorrt.convert (the route Paddle 3.x documents for PIR programs), with the
    dynamic-shape range inference.yml implies (ppir.infer.tensorrt.shape_range); one engine, several sizes."""
    from ppir.data.image_io import to_uint8
    from ppir.infer.tensorrt import shape_range, unavailable_reason

    why = unavailable_reason()
    if why:
        pytest.skip(f"TensorRT cannot run here: {why}")
    cpu_net, folder = exported[name]
    info = read_deploy_info(folder)
    backend = PaddleInferenceBackend(folder, info, use_gpu=True, use_tensorrt=True, precision=precision)
    assert backend.trt_range == shape_range(info)
    for x in inputs():
        got, want = backend.run(x), cpu_net.run(x)
        if precision == "fp32":
            assert max_rel_diff(got, want) < 1e-3, x.shape
        else:
            mse = np.mean((to_uint8(got).astype(np.float64) - to_uint8(want)) ** 2)
            assert mse <= 2.0, f"{x.shape}: fp16 moved the 8-bit output by {mse:.2f} levels^2"
