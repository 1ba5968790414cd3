"""A network ppir has never heard of goes the whole way with no change outside this file (issue 14, item 3).

`TinyNet` below is defined and registered only here. It declares its own facts (H and W multiples of 4 and at
least 8, MIMO-UNet-style half-up rounding, a seed shape, a tile overlap, and a constant torch buffer the
converter must check and drop) and is then built from a config dict, loaded from an official-style torch.save
checkpoint, exported, and run by Paddle Inference, ONNX Runtime, the HTTP server and the quantization report.
Those see only the export and its inference.yml, so whatever they need to know must have travelled there.
"""
import base64
import collections
import os

import cv2
import numpy as np
import paddle.nn as nn
import paddle.nn.functional as F
import pytest
import yaml

import ppir
from ppir.export import export_model, run_paddle2onnx
from ppir.infer.deploy_info import INFO_FILENAME, ONNX_FILENAME, read_deploy_info
from ppir.infer.backends import make_backend
from ppir.infer.restorer import ImageRestorer
from ppir.models.common import ModelFacts, check_input, check_int, model_facts, size_rules
from ppir.profiling import default_shape
from ppir.registry import MODELS
from ppir.vacc.presets import presets

from torch_format import write_torch_zip


def _ones(shape):
    return np.ones(tuple(int(s) for s in shape), np.float32)


class TinyNet(nn.Layer):
    """conv -> 4x4 stride-4 down -> transposed-conv up (hence multiples of 4) -> conv, plus the input."""

    FACTS = ModelFacts(rounding="half_up", seed_shape=(1, 3, 24, 40), tile_overlap=8,
                       constant_torch_buffers={"ones": _ones})
    size_multiple = 4
    min_size = 8

    def __init__(self, width: int = 8):
        super().__init__()
        self.width = check_int("TinyNet", "width", width, 1)
        self.head = nn.Conv2D(3, width, 3, padding=1)
        self.down = nn.Conv2D(width, width, 4, stride=4)
        self.up = nn.Conv2DTranspose(width, width, 4, stride=4)
        self.tail = nn.Conv2D(width, 3, 3, padding=1)

    def forward(self, x):
        check_input(x, "TinyNet", 3, self.size_multiple, self.min_size)
        f = F.relu(self.head(x))
        f = f + self.up(F.relu(self.down(f)))
        return x + self.tail(f)


@pytest.fixture
def registered():
    MODELS.register(TinyNet)
    try:
        yield
    finally:
        MODELS.unregister("TinyNet")


def official_state(width):
    """What a PyTorch TinyNet's state dict holds (conv layouts are the same in both frameworks), plus the
    constant buffer an official model would store."""
    rng = np.random.default_rng(4)
    shapes = {"head.weight": (width, 3, 3, 3), "head.bias": (width,), "down.weight": (width, width, 4, 4),
              "down.bias": (width,), "up.weight": (width, width, 4, 4), "up.bias": (width,),
              "tail.weight": (3, width, 3, 3), "tail.bias": (3,)}
    state = collections.OrderedDict((k, (0.1 * rng.standard_normal(s)).astype(np.float32)) for k, s in shapes.items())
    state["blur.ones"] = _ones((3, 1, 3, 3))
    return state


def sample_image(h, w, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, 0.5 + 0.4 * np.sin(xx / 4.0)], -1)
    return np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1).astype(np.float32)


def to_png(rgb):
    return cv2.imencode(".png", np.round(rgb[:, :, ::-1] * 255).astype(np.uint8))[1].tobytes()


def test_a_fourth_network_goes_from_config_to_serving(registered, tmp_path):
    # build: from a config dict, like any YAML model section
    model = ppir.build_model({"model": {"type": "TinyNet", "width": 8}})
    assert isinstance(model, TinyNet) and model.width == 8
    assert default_shape(model) == (1, 3, 24, 40)  # tools/model_info profiles at the declared seed shape

    # convert: an official-style checkpoint (DataParallel prefixes under 'state_dict', torch zip format)
    state = official_state(8)
    src = write_torch_zip(str(tmp_path / "tiny.pth"),
                          {"state_dict": collections.OrderedDict(("module." + k, v) for k, v in state.items()),
                           "epoch": 7})
    report = ppir.load_weights(model, src)
    assert report.ok and report.constants == ["blur.ones"], report.summary()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k])
    model.eval()

    # export: the declared facts reach inference.yml
    folder = str(tmp_path / "export")
    export_model(model, folder, source={"arguments": {"width": 8}})
    with open(os.path.join(folder, INFO_FILENAME)) as f:
        yml = yaml.safe_load(f)
    assert yml["model"]["name"] == "TinyNet"
    assert (yml["model"]["size_multiple"], yml["model"]["min_size"]) == (4, 8)
    assert yml["postprocess"]["rounding"] == "half_up"
    assert yml["tiling"]["tile_overlap"] == 8 and yml["tiling"]["image_wide"] == ""
    info = read_deploy_info(folder)

    # Paddle Inference and ONNX Runtime agree with dygraph on a size that needs padding (30x45 -> 32x48)
    run_paddle2onnx(folder, os.path.join(folder, ONNX_FILENAME))
    img = sample_image(30, 45, seed=1)
    dygraph = ImageRestorer(make_backend("dygraph", model), info)
    x = dygraph.network_input(img)
    assert x.shape == (1, 3, 32, 48)
    ref = dygraph.infer(x)
    backends = {"paddle_inference": make_backend("paddle", folder, info),
                "onnxruntime": make_backend("onnxruntime", folder, info)}
    for name, backend in backends.items():
        np.testing.assert_allclose(backend.run(x), ref, atol=1e-5, rtol=0, err_msg=name)
    want = dygraph(img)
    assert want.shape == (30, 45, 3)
    clipped = np.clip(ref[0, :, :30, :45].transpose(1, 2, 0), 0, 1)
    np.testing.assert_array_equal(want, np.floor(clipped * 255 + 0.5).astype(np.uint8))  # half_up, as declared
    ort_out = ImageRestorer(backends["onnxruntime"], info)(img)
    assert np.abs(ort_out.astype(int) - want.astype(int)).max() <= 1

    # serving: a separate process that has never imported TinyNet serves it from the export alone
    from ppir.serving import launch
    from ppir.serving.client import get_json, post_json

    pytest.importorskip("fastapi")
    server = launch.start_server(["--port", "0", "--model_dir", folder, "--backend", "onnxruntime",
                                  "--workers", 1, "--warmup", 0, "--cpu-threads", 1],
                                 str(tmp_path / "server.log"), timeout=180)
    try:
        status, _, body = post_json(server.url + "/image-restoration",
                                    {"image": base64.b64encode(to_png(img)).decode()}, 120)
        health = get_json(server.url + "/health", 30)
    finally:
        server.stop()
    assert status == 200, body
    assert health[0] == 200 and health[1]["result"]["model"] == "TinyNet"
    served = cv2.imdecode(np.frombuffer(base64.b64decode(body["result"]["image"]), np.uint8), cv2.IMREAD_COLOR)
    local = ImageRestorer(backends["onnxruntime"], info)(cv2.imdecode(np.frombuffer(to_png(img), np.uint8),
                                                                 cv2.IMREAD_COLOR)[:, :, ::-1] / np.float32(255))
    np.testing.assert_array_equal(served[:, :, ::-1], local)

    # quantization report: fp32 / fp16 / int8 of the ONNX export on degraded-clean pairs
    from ppir.quant import ReportSettings, run_report

    lq_dir, gt_dir = tmp_path / "lq", tmp_path / "gt"
    lq_dir.mkdir()
    gt_dir.mkdir()
    rng = np.random.default_rng(2)
    for i in range(2):
        clean = sample_image(24, 36, seed=10 + i)
        noisy = np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1)
        (gt_dir / f"{i}.png").write_bytes(to_png(clean))
        (lq_dir / f"{i}.png").write_bytes(to_png(noisy))
    rows, facts = run_report(ReportSettings(model_dir=folder, lq_dir=str(lq_dir), gt_dir=str(gt_dir),
                                            calib_files=sorted(str(p) for p in lq_dir.iterdir()), calib_size=16,
                                            cpu_threads=1, save_dir=str(tmp_path / "quant")), log=lambda _: None)
    assert facts["model"] == "TinyNet" and facts["arguments"] == {"width": 8}
    by = {r.label: r for r in rows}
    assert set(by) == {"input (degraded)", "fp32", "fp16", "int8"}
    assert np.isfinite(by["fp32"].psnr) and by["fp16"].psnr_vs_fp32 > 40 and by["int8"].psnr_vs_fp32 > 20


def test_the_fourth_network_is_gone_afterwards():
    assert "TinyNet" not in MODELS and MODELS.names() == ["HINet", "MIMOUNet", "MIMOUNetPlus", "MIRNet"]


def test_facts_defaults_and_inheritance():
    class Bare(nn.Layer):  # declares nothing
        pass

    class Wrong(nn.Layer):
        FACTS = {"rounding": "half_up"}

    assert model_facts(Bare()) == ModelFacts() and size_rules(Bare()) == (1, 1)
    assert default_shape(Bare()) == (1, 3, 256, 256)
    with pytest.raises(TypeError, match="Wrong.FACTS must be"):
        model_facts(Wrong)
    # MIMO-UNet+ inherits MIMO-UNet's facts; the VACC presets (ppir.vacc.presets) hold one entry per recipe
    assert model_facts(MODELS.get("MIMOUNetPlus")) is model_facts(MODELS.get("MIMOUNet"))
    assert model_facts(MODELS.get("MIMOUNetPlus")).rounding == "half_up"
    assert {k: v["model"] for k, v in presets().items()} == {"hinet_sidd": "HINet", "mimo_unet_gopro": "MIMOUNet"}
