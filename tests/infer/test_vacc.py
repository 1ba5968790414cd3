"""The VACC runner without a VACC card: its shared pre/post-processing, the ONNX Runtime stand-in end to end,
the vaststreamx code path against a fake SDK (ONNX Runtime underneath, same API calls), the one-line message when
the SDK is missing, the vamc build configs and the calibration-set builder."""
import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import yaml

import ppir
from ppir.infer.deploy_info import DeployInfo, write_deploy_info
from ppir.infer.backends import BackendError, OnnxRuntimeBackend
from ppir.vacc.runner import VaccPipeline, postprocess, preprocess, read_rgb, run_uint8
from ppir.metrics import PSNR, SSIM
from ppir.vacc.backend import import_vaststreamx, normalize, vdsp_params
from ppir.vacc.presets import vacc_problem

from conftest import REPO, export_tiny_hinet

INFER = os.path.join(REPO, "deploy", "vacc", "infer.py")
BUILD = os.path.join(REPO, "deploy", "vacc", "build_config.py")
CALIB = os.path.join(REPO, "deploy", "vacc", "make_calib_set.py")
H, W = 64, 96  # the tiny model's "compiled" shape (non-square, to catch H/W swaps)

FAKE_SDK = textwrap.dedent('''
    """A stand-in for VastAI's vaststreamx with the calls ppir's VaccBackend makes, backed by ONNX Runtime.
    It checks what a real card would need: uint8 RGB planar images of the compiled size, a DIV255 vdsp op."""
    import json
    import numpy as np
    import onnxruntime as ort

    class ImageFormat:
        RGB_PLANAR = "RGB_PLANAR"

    class StreamBalanceMode:
        ONCE = "ONCE"

    def set_device(device_id):
        return 0 if device_id == 0 else -1

    class Model:
        def __init__(self, prefix, batch_size):
            with open(prefix + ".json") as f:
                meta = json.load(f)
            self.session = ort.InferenceSession(meta["onnx"], providers=["CPUExecutionProvider"])
            self.input_shape = [tuple(meta["shape"])]

    class _Fusion:
        def __init__(self, cfg):
            assert cfg["OpType"] == "FUSION_OP_RGB_RESIZE_CVTCOLOR_NORM_TENSOR"
            assert cfg["OpConfig"]["NormaType"] == "DIV255" and cfg["OpConfig"]["IimageFormat"] == "RGB_PLANAR"
            self.cfg = cfg["OpConfig"]

    class Operator:
        @staticmethod
        def load_ops_from_json_file(path):
            with open(path) as f:
                return [_Fusion(json.load(f))]

    class ModelOperator:
        def __init__(self, model):
            self.model = model

    class Graph:
        def add_operators(self, *ops):
            self.ops = ops

    class _Image:
        def __init__(self, arr, w, h):
            self.arr, self.width, self.height = arr, w, h

    def create_image(arr, fmt, w, h, device_id):
        assert fmt == ImageFormat.RGB_PLANAR and arr.dtype == np.uint8 and arr.shape == (3, h, w), (arr.shape, w, h)
        return _Image(arr, w, h)

    class Stream:
        def __init__(self, graph, mode):
            self.fusion, self.model_op = graph.ops
            self.built = False

        def register_operator_output(self, op):
            assert op is self.model_op

        def build(self):
            self.built = True

        def run_sync(self, images):
            assert self.built
            (img,) = images
            cfg = self.fusion.cfg
            assert (img.width, img.height) == (cfg["OimageWidth"], cfg["OimageHeight"])
            x = (img.arr.astype(np.float32) / 255.0)[None]  # what the vdsp DIV255 operator does on the card
            sess = self.model_op.model.session
            return [[sess.run(None, {sess.get_inputs()[0].name: x})[0]]]

        def close_input(self):
            pass

        def wait_until_done(self):
            pass

    def as_numpy(t):
        return np.asarray(t)
''')


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def fixed_export(tmp_path_factory):
    """A tiny HINet exported with a fixed 1x3x64x96 shape, converted at the VACC recipe's opset 11."""
    return export_tiny_hinet(str(tmp_path_factory.mktemp("vacc_hinet")), input_shape=[1, 3, H, W], opset_version=11)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """Pairs of different sizes (none of them the compiled one), PNG and JPEG."""
    root = tmp_path_factory.mktemp("vacc_data")
    rng = np.random.default_rng(0)
    for i, (h, w, ext) in enumerate([(50, 70, ".png"), (120, 90, ".jpg"), (64, 96, ".png")]):
        yy, xx = np.mgrid[0:h, 0:w]
        gt = (np.stack([xx / w, yy / h, 0.5 + 0.4 * np.sin(xx / 6.0)], -1) * 230).astype(np.uint8)
        lq = np.clip(gt + rng.normal(0, 20, gt.shape), 0, 255).astype(np.uint8)
        for sub, img in (("lq", lq), ("gt", gt)):
            os.makedirs(root / sub, exist_ok=True)
            cv2.imwrite(str(root / sub / f"img{i}{ext}"), img)
    return root


@pytest.fixture(scope="session")
def fake_sdk(tmp_path_factory, fixed_export):
    """(PYTHONPATH holding the fake vaststreamx, a 'compiled' model prefix)."""
    root = tmp_path_factory.mktemp("fake_sdk")
    (root / "vaststreamx.py").write_text(FAKE_SDK)
    weights = root / "deploy_weights" / "hinet_int8"
    weights.mkdir(parents=True)
    (weights / "mod.json").write_text(json.dumps({"onnx": os.path.join(fixed_export, "model.onnx"),
                                                  "shape": [1, 3, H, W]}))
    (weights / "mod.so").write_bytes(b"")
    (weights / "mod.params").write_bytes(b"")
    return str(root), str(weights / "mod")


def run_infer(*args, env=None):
    return subprocess.run([sys.executable, INFER, *map(str, args)], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env=env)


def parse_lines(stdout):
    out = {}
    for line in stdout.splitlines():
        if line.startswith("image: "):
            fields = dict(kv.split(": ", 1) for kv in line.split(", "))
            out[fields["image"]] = fields
    return out


# --------------------------------------------------------------------------------------------------- tests
def test_pre_and_post_processing(tmp_path):
    path = str(tmp_path / "colour.png")
    bgr = np.zeros((10, 20, 3), np.uint8)
    bgr[..., 0], bgr[..., 2] = 200, 10  # blue-ish in OpenCV's BGR order
    assert cv2.imwrite(path, bgr)
    rgb = read_rgb(path)  # the one colour conversion: the file's blue ends up last
    assert (rgb[..., 0] == 10).all() and (rgb[..., 2] == 200).all()
    x = preprocess(rgb, 10, 20)
    assert x.shape == (1, 3, 10, 20) and x.dtype == np.uint8
    assert (x[0, 0] == 10).all() and (x[0, 2] == 200).all()  # RGB planar
    big = preprocess(np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8), 16, 24)
    assert big.shape == (1, 3, 16, 24)  # bilinear resize to the compiled shape (any input size)
    assert np.allclose(normalize(x), x / 255.0)
    # post: clip, rounding, RGB kept
    y = np.zeros((1, 3, 2, 2), np.float32)
    y[0, 0] = 100.5 / 255  # R: exactly half a level
    y[0, 1] = 1.7  # G: clipped
    y[0, 2] = -0.3  # B: clipped
    near, half = postprocess(y, "nearest"), postprocess(y, "half_up")
    assert near.shape == (2, 2, 3) and near.dtype == np.uint8
    assert (near[..., 0] == 100).all() and (half[..., 0] == 101).all()  # MIMO-UNet: +0.5/255 then truncate
    assert (near[..., 1] == 255).all() and (near[..., 2] == 0).all()
    assert vdsp_params(360, 640)["OpConfig"]["OimageWidth"] == 640


def test_sdk_missing_is_one_clear_line(monkeypatch, dataset, tmp_path):
    monkeypatch.setitem(sys.modules, "vaststreamx", None)  # import fails as it does without the SDK
    with pytest.raises(BackendError, match="vaststreamx.*not on PyPI"):
        import_vaststreamx()
    r = run_infer("--model_prefix", tmp_path / "deploy_weights" / "mod", "--image_dir", dataset / "lq")
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1, r.stderr
    assert "vaststreamx" in errors[0] and "--backend onnxruntime" in errors[0]
    assert "Traceback" not in r.stderr


def test_onnxruntime_standin_end_to_end(fixed_export, dataset, tmp_path):
    out_dir = tmp_path / "out"
    r = run_infer("--backend", "onnxruntime", "--model_prefix", os.path.join(fixed_export, "model.onnx"),
                  "--image_dir", dataset / "lq", "--gt_dir", dataset / "gt", "--save_dir", out_dir)
    assert r.returncode == 0, r.stderr
    lines = parse_lines(r.stdout)
    assert sorted(lines) == ["img0.png", "img1.jpg", "img2.png"]
    assert "avg psnr:" in r.stdout and "avg time (ms)" in r.stdout
    assert "rounding nearest" in r.stderr  # read from the export's inference.yml
    # recompute one image by hand: resize, RGB, /255, ONNX Runtime, clip, round, BGR; GT resized with INTER_AREA
    backend = OnnxRuntimeBackend(os.path.join(fixed_export, "model.onnx"))
    lq = cv2.imread(str(dataset / "lq" / "img1.jpg"))
    rgb = cv2.cvtColor(cv2.resize(lq, (W, H), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    y = backend.run((rgb.transpose(2, 0, 1)[None] / 255.0).astype(np.float32))
    want = np.clip(np.rint(np.clip(y[0], 0, 1) * 255), 0, 255).astype(np.uint8).transpose(1, 2, 0)[:, :, ::-1]
    saved = cv2.imread(str(out_dir / "img1.png"))
    assert saved.shape == (H, W, 3) and np.array_equal(saved, want)
    gt = cv2.resize(cv2.imread(str(dataset / "gt" / "img1.jpg")), (W, H), interpolation=cv2.INTER_AREA)
    assert float(lines["img1.jpg"]["psnr"]) == pytest.approx(PSNR()(want[:, :, ::-1], gt[:, :, ::-1]), abs=1e-4)
    assert float(lines["img1.jpg"]["ssim"]) == pytest.approx(SSIM()(want[:, :, ::-1], gt[:, :, ::-1]), abs=1e-4)
    # a dynamic-shape model needs --shape; a wrong --shape for a fixed model is refused: one line each
    r = run_infer("--backend", "onnxruntime", "--model_prefix", fixed_export, "--image_dir", dataset / "lq",
                  "--shape", "32x32", "--save_dir", "")
    assert r.returncode == 2 and "takes 64x96" in r.stderr and "Traceback" not in r.stderr


def test_vacc_runner_judges_headers_before_decoding(fixed_export, dataset, tmp_path):
    """A file whose header promises more pixels than any memory budget holds is refused from its header, in one
    line, before a pixel is allocated; the other images are still restored (exit 1, as for any failed image)."""
    import shutil
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    images = tmp_path / "in"
    images.mkdir()
    shutil.copy(dataset / "lq" / "img0.png", images / "img0.png")
    side = 100_000  # 10^10 pixels: over the default budget (half of any machine's memory) in every case
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))  # 8-bit RGB
    (images / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                                      + chunk(b"IEND", b""))
    r = run_infer("--backend", "onnxruntime", "--model_prefix", os.path.join(fixed_export, "model.onnx"),
                  "--image_dir", images, "--save_dir", tmp_path / "out")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bomb.png" in errors[0] and "memory budget" in errors[0], r.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["img0.png"]


def test_vacc_runner_follows_the_shared_output_and_ground_truth_rules(fixed_export, dataset, tmp_path):
    """The VACC runner restores through the one loop (ppir.infer.loop): inputs sharing a stem keep apart, an
    image without ground truth is still restored and saved but counted as not scored (exit 1), and a --save_dir
    that would replace inputs is refused before any work unless --overwrite."""
    import shutil

    lq, gt, out = tmp_path / "lq", tmp_path / "gt", tmp_path / "out"
    shutil.copytree(dataset / "lq", lq)
    shutil.copytree(dataset / "gt", gt)
    shutil.copy(lq / "img0.png", lq / "img0.jpg")  # same stem as img0.png
    os.remove(gt / "img2.png")
    model = os.path.join(fixed_export, "model.onnx")
    r = run_infer("--backend", "onnxruntime", "--model_prefix", model, "--image_dir", lq, "--gt_dir", gt,
                  "--save_dir", out)
    assert r.returncode == 1, r.stderr
    lines = parse_lines(r.stdout)
    assert sorted(lines) == ["img0.jpg", "img0.png", "img1.jpg", "img2.png"]
    assert sorted(os.listdir(out)) == ["img0.jpg.png", "img0.png", "img1.png", "img2.png"]
    assert "psnr" in lines["img0.jpg"] and "psnr" not in lines["img2.png"]
    assert lines["img2.png"]["saved"] == str(out / "img2.png")
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "img2.png: not scored: no ground truth" in errors[0]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("restored 4 of 4 image(s)") and "1 restored but not scored" in last
    before = {n: (lq / n).read_bytes() for n in os.listdir(lq)}
    r = run_infer("--backend", "onnxruntime", "--model_prefix", model, "--image_dir", lq, "--save_dir", lq)
    assert r.returncode == 2 and "is the input folder" in r.stderr and "Traceback" not in r.stderr
    assert {n: (lq / n).read_bytes() for n in os.listdir(lq)} == before
    r = run_infer("--backend", "onnxruntime", "--model_prefix", model, "--image_dir", lq, "--save_dir", lq,
                  "--overwrite")
    assert r.returncode == 0, r.stderr
    assert (lq / "img0.jpg.png").is_file() and (lq / "img0.png").read_bytes() != before["img0.png"]


def test_vacc_path_matches_standin_with_fake_sdk(fake_sdk, fixed_export, dataset, tmp_path):
    """The vaststreamx code path (graph, vdsp op, uint8 planar images, run_sync) against a fake SDK gives
    exactly the ONNX Runtime stand-in's outputs: the two share every line of pre/post-processing."""
    pythonpath, prefix = fake_sdk
    env = dict(os.environ, PYTHONPATH=pythonpath + os.pathsep + os.environ.get("PYTHONPATH", ""))
    vacc_dir, ort_dir = tmp_path / "vacc", tmp_path / "ort"
    r = run_infer("--model_prefix", prefix, "--model_dir", fixed_export, "--image_dir", dataset / "lq",
                  "--gt_dir", dataset / "gt", "--save_dir", vacc_dir, env=env)
    assert r.returncode == 0, r.stderr
    assert "(vacc, 3 image(s))" in r.stdout
    r2 = run_infer("--backend", "onnxruntime", "--model_prefix", os.path.join(fixed_export, "model.onnx"),
                   "--image_dir", dataset / "lq", "--gt_dir", dataset / "gt", "--save_dir", ort_dir)
    assert r2.returncode == 0, r2.stderr
    vacc_lines, ort_lines = parse_lines(r.stdout), parse_lines(r2.stdout)
    assert sorted(vacc_lines) == sorted(ort_lines) == ["img0.png", "img1.jpg", "img2.png"]
    for name in vacc_lines:
        for key in ("psnr", "ssim"):
            assert vacc_lines[name][key] == ort_lines[name][key]
    for name in ("img0.png", "img1.png", "img2.png"):
        assert np.array_equal(cv2.imread(str(vacc_dir / name)), cv2.imread(str(ort_dir / name)))
    # a prefix without the compiled files: one line
    r = run_infer("--model_prefix", tmp_path / "nothing" / "mod", "--image_dir", dataset / "lq", env=env)
    assert r.returncode == 2 and "mod.json" in r.stderr and "Traceback" not in r.stderr


def test_tile_mode_keeps_full_resolution(fixed_export, dataset):
    backend = OnnxRuntimeBackend(os.path.join(fixed_export, "model.onnx"))
    seen = []

    class Spy:
        name = "spy"

        def run(self, x):
            seen.append(x.shape)
            return backend.run(x)

    img = read_rgb(str(dataset / "lq" / "img1.jpg"))  # 120 x 90: larger than a tile in H, smaller in W
    tiled = VaccPipeline(Spy(), H, W, "nearest", mode="tile", tile_overlap=16)
    prepared, _ = tiled.prepare(img)
    out = tiled.finish(tiled.run([prepared])[0], img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert set(seen) == {(1, 3, H, W)} and len(seen) >= 2  # only compiled-shape tiles reach the card
    resized = VaccPipeline(backend, H, W, "nearest")
    prepared, _ = resized.prepare(img)
    assert resized.finish(resized.run([prepared])[0], img).shape == (H, W, 3)
    assert np.array_equal(run_uint8(backend, preprocess(img, H, W)), backend.run(normalize(preprocess(img, H, W))))


def _dummy_onnx(path, shape):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), path)


def test_build_configs(tmp_path, fixed_export):
    out = tmp_path / "build"
    r = subprocess.run([sys.executable, BUILD, "--name", "hinet_tiny", "--onnx",
                        os.path.join(fixed_export, "model.onnx"), "--shape", f"{H}x{W}", "--calib_dir", "calib/hinet",
                        "--calib_num", "8", "--out_dir", str(out)], capture_output=True, text=True, timeout=120,
                       cwd=REPO)
    assert r.returncode == 0, r.stderr
    fp16 = yaml.safe_load((out / "hinet_tiny_fp16.yaml").read_text())
    int8 = yaml.safe_load((out / "hinet_tiny_int8.yaml").read_text())
    assert fp16["frontend"] == {"shape": {"x": [1, 3, H, W]}, "type": "onnx",
                                "checkpoint": os.path.join(fixed_export, "model.onnx"), "dtype": "fp32"}
    assert fp16["backend"]["dtype"] == "fp16" and "dataset" not in fp16 and "quantize" not in fp16["backend"]
    assert int8["backend"]["quantize"] == {"calibrate_mode": "percentile", "quantize_per_channel": True}
    assert int8["dataset"]["path"] == "calib/hinet" and int8["dataset"]["sampler"]["get_data_num"] == 8
    assert {"type": "Resize", "size": [H, W]} in int8["dataset"]["process_ops"]
    vdsp = json.loads((out / "hinet_tiny-vdsp_params.json").read_text())
    assert (vdsp["OpConfig"]["OimageHeight"], vdsp["OpConfig"]["OimageWidth"]) == (H, W)
    # a preset whose shape the fixed export does not have: refused in one line
    r = subprocess.run([sys.executable, BUILD, "--preset", "hinet_sidd", "--onnx",
                        os.path.join(fixed_export, "model.onnx"), "--out_dir", str(out)],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 2 and "--input-shape 1,3,256,256" in r.stderr and "Traceback" not in r.stderr
    # MIMO-UNet must be the bilinear export (VastModelZOO's recipe's resize_mode); export records whether it is
    for mode, ok in (("nearest", False), ("bilinear", True)):
        folder = tmp_path / f"mimo_{mode}"
        folder.mkdir()
        _dummy_onnx(str(folder / "model.onnx"), [1, 3, 360, 640])
        model = ppir.build_model({"type": "MIMOUNet", "num_res": 0, "base_channel": 2, "resize_mode": mode})
        write_deploy_info(DeployInfo(model_name="MIMOUNet", size_multiple=4, input_shape=[1, 3, 360, 640],
                                     rounding="half_up", source={"arguments": {"resize_mode": mode}},
                                     vacc_problem=vacc_problem(model)), str(folder))
        r = subprocess.run([sys.executable, BUILD, "--preset", "mimo_unet_gopro", "--onnx", str(folder / "model.onnx"),
                            "--out_dir", str(tmp_path / f"out_{mode}")], capture_output=True, text=True, timeout=120,
                           cwd=REPO)
        assert (r.returncode == 0) == ok, r.stderr
        if not ok:
            assert "resize_mode" in r.stderr and "bilinear" in r.stderr
            r = subprocess.run([sys.executable, BUILD, "--preset", "mimo_unet_gopro", "--onnx",
                                str(folder / "model.onnx"), "--out_dir", str(tmp_path / f"out_{mode}"),
                                "--allow_nearest"], capture_output=True, text=True, timeout=120, cwd=REPO)
            assert r.returncode == 0 and "resize_mode=nearest" in r.stdout + r.stderr, r.stderr


def test_checked_in_build_configs():
    folder = os.path.join(REPO, "deploy", "vacc", "build")
    want = {"hinet_sidd": [256, 256], "mimo_unet_gopro": [360, 640]}
    for name, (h, w) in want.items():
        for precision in ("fp16", "int8"):
            with open(os.path.join(folder, f"{name}_{precision}.yaml")) as f:
                text = f.read()
            cfg = yaml.safe_load(text)
            assert cfg["frontend"]["shape"]["x"] == [1, 3, h, w] and cfg["backend"]["dtype"] == precision
            if precision == "int8":
                assert cfg["backend"]["quantize"]["calibrate_mode"] == "percentile"
            if name == "mimo_unet_gopro":
                assert "resize_mode: bilinear" in text and "model.resize_mode=bilinear" in text
        with open(os.path.join(folder, f"{name}-vdsp_params.json")) as f:
            assert json.load(f)["OpConfig"]["NormaType"] == "DIV255"


def test_calibration_set(dataset, tmp_path):
    out = tmp_path / "calib"
    r = subprocess.run([sys.executable, CALIB, "--image_dir", str(dataset / "lq"), "--out_dir", str(out),
                        "--shape", f"{H}x{W}", "--num", "2"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    pngs = sorted(p for p in os.listdir(out) if p.endswith(".png"))
    assert pngs == ["img0.png", "img2.png"]  # spread evenly over the sorted list: first and last
    for name in pngs:
        img = cv2.imread(str(out / name))
        assert img.shape == (H, W, 3)
        with np.load(out / "npz" / name.replace(".png", ".npz")) as d:
            x = d["input_0"]
        assert x.dtype == np.uint8 and x.shape == (3, H, W)
        assert np.array_equal(x, preprocess(read_rgb(str(dataset / "lq" / name)), H, W)[0])  # the runner's pre
        assert np.array_equal(x, img[:, :, ::-1].transpose(2, 0, 1))  # and the PNG holds the same pixels
    assert len((out / "npz_datalist.txt").read_text().split()) == 2
