"""The deploy runners end to end (Paddle Inference and ONNX Runtime), and what they do with bad input."""
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
import skimage.data
from skimage.metrics import peak_signal_noise_ratio

import ppir
from ppir.cli import run
from ppir.commands.infer import build_parser, run_command
from ppir.export import export_model, run_paddle2onnx

from conftest import REPO

SCRIPTS = {"paddle": "deploy/inference_python/infer.py", "onnxruntime": "deploy/onnxruntime/infer.py"}
LINE = re.compile(r"^image: (?P<name>[^,]+), psnr: (?P<psnr>[-\d.inf]+), ssim: (?P<ssim>[-\d.na]+)$")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """Tiny HINet (multiple 16, so every odd size below needs padding), exported with its ONNX model."""
    paddle.seed(0)
    model = ppir.build_model(os.path.join(REPO, "configs", "hinet_sidd_0.5x.yml"), ["model.wf=8"])
    folder = str(tmp_path_factory.mktemp("runner_model"))
    export_model(model, folder)
    run_paddle2onnx(folder, os.path.join(folder, "model.onnx"), in_process=True)
    return folder


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Three noisy/clean pairs of odd sizes."""
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    src = skimage.data.astronaut()[:, :, ::-1]
    boxes = {"a.png": (0, 0, 37, 53), "b.png": (100, 150, 64, 64), "c.png": (200, 40, 50, 90)}
    for name, (y, x, h, w) in boxes.items():
        clean = np.ascontiguousarray(src[y:y + h, x:x + w])
        noisy = np.clip(clean.astype(int) + rng.integers(-15, 16, clean.shape), 0, 255).astype(np.uint8)
        os.makedirs(root / "lq", exist_ok=True)
        os.makedirs(root / "gt", exist_ok=True)
        cv2.imwrite(str(root / "lq" / name), noisy)
        cv2.imwrite(str(root / "gt" / name), clean)
    return root


def run_script(kind, *args):
    cmd = [sys.executable, SCRIPTS[kind], *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)


@pytest.mark.parametrize("kind,flags", [
    ("paddle", ["--enable_mkldnn", "True"]),
    ("paddle", ["--enable_mkldnn=False"]),
    ("onnxruntime", ["--use_gpu=False"]),
], ids=["paddle_onednn_on", "paddle_onednn_off", "onnxruntime"])
def test_runner_end_to_end(model_dir, pairs, tmp_path, kind, flags):
    out = tmp_path / "out"
    r = run_script(kind, "--model_dir", model_dir, "--image_dir", pairs / "lq", "--gt_dir", pairs / "gt",
                   "--save_dir", out, "--cpu_threads", "2", "--batch_size", "1", "--precision", "fp32",
                   "--benchmark", "True", *flags)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    results = {m["name"]: m for m in map(LINE.match, lines) if m}
    assert sorted(results) == ["a.png", "b.png", "c.png"]
    for name, m in results.items():
        restored = cv2.imread(str(out / name))
        gt = cv2.imread(str(pairs / "gt" / name))
        assert restored.shape == gt.shape  # the input's size, whatever the network's multiple
        want = peak_signal_noise_ratio(gt[:, :, ::-1], restored[:, :, ::-1], data_range=255)
        assert float(m["psnr"]) == pytest.approx(want, abs=1e-3)
        assert -1 <= float(m["ssim"]) <= 1
    avg = [ln for ln in lines if ln.startswith("avg psnr: ")]
    assert len(avg) == 1 and re.fullmatch(r"avg psnr: [-\d.]+, avg ssim: [-\d.]+", avg[0])
    # the AutoLog-layout report comes after the results (AutoLog's own report may exit the process)
    report = [ln for ln in lines if " root INFO: " in ln]
    assert lines.index(avg[0]) < lines.index(report[0])
    perf = [ln for ln in report if "preprocess_time(ms)" in ln]
    assert len(perf) == 1 and re.search(r"preprocess_time\(ms\): [\d.]+, inference_time\(ms\): [\d.]+, "
                                        r"postprocess_time\(ms\): [\d.]+$", perf[0])
    assert any("data_num: 3" in ln for ln in report)
    mkldnn = "True" if "True" in flags else "False"
    assert any(ln.endswith(f"enable_mkldnn: {mkldnn}") for ln in report) or kind == "onnxruntime"
    assert "Traceback" not in r.stderr


def test_backends_agree_on_outputs(model_dir, pairs, tmp_path):
    """Paddle Inference (oneDNN on and off) and ONNX Runtime write the same 8-bit images (within one level)."""
    outs = {}
    for kind, extra in (("paddle", ["--enable_mkldnn", "True"]), ("paddle", ["--enable_mkldnn", "False"]),
                        ("onnxruntime", [])):
        out = tmp_path / f"{kind}{len(outs)}"
        assert run(lambda a: run_command(a, kind), ["--model_dir", model_dir, "--image_dir",
                                                              str(pairs / "lq"), "--save_dir", str(out), *extra]) == 0
        outs[out] = [cv2.imread(str(out / n)).astype(int) for n in ("a.png", "b.png", "c.png")]
    first, *others = outs.values()
    for other in others:
        for a, b in zip(first, other):
            assert np.abs(a - b).max() <= 1


def write_bad_inputs(folder):
    os.makedirs(folder, exist_ok=True)
    rgb = skimage.data.astronaut()[50:90, 60:118]  # 40 x 58
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    cv2.imwrite(str(folder / "good.png"), bgr)
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "rgba.png"), np.dstack([bgr, np.full(bgr.shape[:2], 128, np.uint8)]))
    cv2.imwrite(str(folder / "deep.png"), bgr.astype(np.uint16) * 257)  # 16-bit, same picture
    cv2.imwrite(str(folder / "tiny.png"), bgr[:5, :7])  # smaller than the network's multiple (16) and minimum (32)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "empty.jpg").write_bytes(b"")


def test_bad_inputs(model_dir, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_bad_inputs(src)
    r = run_script("onnxruntime", "--model_dir", model_dir, "--image_dir", src, "--save_dir", out)
    assert r.returncode == 1  # two files failed; the others were restored
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 2 and any("corrupt.png" in e for e in errors) and any("empty.jpg" in e for e in errors)
    assert sorted(os.listdir(out)) == ["deep.png", "good.png", "gray.png", "rgba.png", "tiny.png"]
    good = cv2.imread(str(out / "good.png"), cv2.IMREAD_UNCHANGED)
    for name in ("gray.png", "rgba.png", "deep.png"):
        got = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert got.shape == (40, 58, 3) and got.dtype == np.uint8
    # RGBA -> its RGB and 16-bit -> scaled to [0, 1] give the 8-bit picture's result
    assert np.abs(cv2.imread(str(out / "rgba.png")).astype(int) - good).max() <= 1
    assert np.abs(cv2.imread(str(out / "deep.png")).astype(int) - good).max() <= 1
    assert cv2.imread(str(out / "tiny.png")).shape == (5, 7, 3)
    assert "restored 5 of 7" in r.stderr


def test_tiled_runner(model_dir, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    os.makedirs(src)
    cv2.imwrite(str(src / "big.png"), skimage.data.astronaut()[:100, :150, ::-1])
    args = ["--model_dir", model_dir, "--image_dir", str(src), "--save_dir", str(out), "--tile", "48",
            "--tile_overlap", "16", "--batch_size", "2", "--benchmark", "True"]
    assert run(lambda a: run_command(a, "onnxruntime"), args) == 0
    assert cv2.imread(str(out / "big.png")).shape == (100, 150, 3)
    assert "tiles 48x48, overlap 16" in capsys.readouterr().out
    # a tile that does not fit the network is one clear line
    assert run(lambda a: run_command(a, "onnxruntime"), args[:6] + ["--tile", "40"]) == 2
    assert "multiples of 16" in capsys.readouterr().err


@pytest.mark.parametrize("kind,args,message", [
    ("paddle", ["--use_gpu", "True"], "no CUDA device"),
    ("paddle", ["--use_tensorrt", "True"], "--use_tensorrt True needs --use_gpu True"),
    ("paddle", ["--precision", "fp16"], "no fp16 path on CPU"),
    ("paddle", ["--precision", "int8"], "needs a quantized program"),
    ("onnxruntime", ["--use_gpu", "True"], "no CUDA provider"),
    ("onnxruntime", ["--use_tensorrt", "True"], "no TensorRT provider"),
    ("onnxruntime", ["--precision", "int8"], "is an fp32 model"),
    ("onnxruntime", ["--model_file", "missing.onnx"], "no such ONNX model"),
], ids=lambda v: v if isinstance(v, str) and " " not in v else None)
def test_unavailable_options_are_one_line(model_dir, tmp_path, capsys, kind, args, message):
    cv2.imwrite(str(tmp_path / "a.png"), skimage.data.astronaut()[:32, :32])
    code = run(lambda a: run_command(a, kind),
               ["--model_dir", model_dir, "--image_dir", str(tmp_path / "a.png"), "--save_dir", str(tmp_path / "out")]
               + args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_flag_parsing_and_missing_paths(model_dir, tmp_path, capsys):
    parser = build_parser("paddle")
    a = parser.parse_args(["--model_dir", "m", "--image_dir", "i", "--enable_mkldnn", "True", "--use-gpu=false",
                           "--benchmark=TRUE", "--cpu-threads", "3"])
    assert (a.enable_mkldnn, a.use_gpu, a.benchmark, a.cpu_threads) == (True, False, True, 3)
    with pytest.raises(SystemExit):
        parser.parse_args(["--model_dir", "m", "--image_dir", "i", "--enable_mkldnn", "maybe"])
    for kind in SCRIPTS:
        with pytest.raises(SystemExit) as e:
            build_parser(kind).parse_args(["--help"])
        assert e.value.code == 0
        assert "--tile_overlap" in capsys.readouterr().out
    assert run(lambda a: run_command(a, "paddle"), ["--model_dir", str(tmp_path / "nope"), "--image_dir", "x"]) == 2
    assert run(lambda a: run_command(a, "paddle"), ["--model_dir", str(tmp_path), "--image_dir", "x"]) == 2
    assert run(lambda a: run_command(a, "paddle"), ["--model_dir", model_dir, "--image_dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "inference.yml: no such file" in err and "no such file or folder" in err


def tiny_int8_onnx(path):
    """A 3->3 conv behind a QuantizeLinear/DequantizeLinear pair: the shape of a QDQ-quantized ONNX model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.zeros((3, 3, 3, 3), np.float32)
    w[[0, 1, 2], [0, 1, 2], 1, 1] = 1.0  # identity conv
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"]),
             helper.make_node("Conv", ["xd", "w"], ["y"], pads=[1, 1, 1, 1])]
    inits = [numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
             numpy_helper.from_array(np.array(0, np.uint8), "zero"), numpy_helper.from_array(w, "w")]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, None, None]) for n in ("x", "y")]
    graph = helper.make_graph(nodes, "int8", io[:1], io[1:], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def test_int8_onnx_via_model_file(model_dir, tmp_path, capsys):
    """How tools/quant_report.py will feed a quantized model: --model_file + --precision int8."""
    int8 = str(tmp_path / "int8.onnx")
    tiny_int8_onnx(int8)
    img = skimage.data.astronaut()[:40, :40, ::-1]
    cv2.imwrite(str(tmp_path / "a.png"), img)
    args = ["--model_dir", model_dir, "--model_file", int8, "--precision", "int8", "--image_dir",
            str(tmp_path / "a.png"), "--save_dir", str(tmp_path / "out"), "--benchmark", "True"]
    assert run(lambda a: run_command(a, "onnxruntime"), args) == 0
    assert "precision: int8" in capsys.readouterr().out
    assert np.abs(cv2.imread(str(tmp_path / "out" / "a.png")).astype(int) - img).max() <= 1  # the identity net
    # the default --precision fp32 accepts the file too and reports what it is
    assert run(lambda a: run_command(a, "onnxruntime"), args[:4] + args[6:]) == 0
    assert "precision: int8" in capsys.readouterr().out
