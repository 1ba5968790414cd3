"""tools/quant_report.py on a tiny HINet: fp16 conversion, int8 static quantization with percentile calibration,
evaluation with the runners' pre/post-processing, the Markdown table, and one-line errors."""
import os
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest

from ppir.infer.deploy_info import read_deploy_info
from ppir.infer.backends import OnnxRuntimeBackend, onnx_model_precision
from ppir.quant import PrecisionRow, calibration_inputs, markdown_table

from conftest import REPO

TOOL = os.path.join(REPO, "tools", "quant_report.py")
# fp16 keeps 11 significant bits: one rounding moves an output in [0, 1] by at most 2^-12, an eighth of an 8-bit
# step, so what reaches the 8-bit image is an occasional +-1 where a value sat near a rounding boundary, plus what
# the network's depth accumulates. Allowing a mean squared change of 2 steps^2 (every pixel off by one, and then
# some) gives 10*log10(255^2 / 2) = 45.1 dB. The network has the official model's initialisation (golden weights),
# so its outputs have the magnitude of a real restorer's, not the exploding ones of Paddle's default init.
FP16_MIN_FIDELITY = 10 * np.log10(255.0 ** 2 / 2)


@pytest.fixture(scope="session")
def tiny_export(tiny_hinet_export):
    return tiny_hinet_export


@pytest.fixture(scope="session")
def pairs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("quant_data")
    rng = np.random.default_rng(0)
    for sub in ("lq", "gt"):
        os.makedirs(root / sub)
    for i, (h, w) in enumerate([(48, 64), (40, 40), (64, 48)]):
        yy, xx = np.mgrid[0:h, 0:w]
        gt = (np.stack([xx / w, yy / h, 0.5 + 0.4 * np.cos(yy / 4.0)], -1) * 220).astype(np.uint8)
        lq = np.clip(gt + rng.normal(0, 15, gt.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "lq" / f"p{i}.png"), lq)
        cv2.imwrite(str(root / "gt" / f"p{i}.png"), gt)
    return root


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)], capture_output=True, text=True, timeout=600,
                          cwd=REPO)


def table_rows(text):
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| precision"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def test_quant_report_tiny_model(tiny_export, pairs_dir, tmp_path):
    out_md, save = tmp_path / "report.md", tmp_path / "models"
    r = run_tool("--model_dir", tiny_export, "--dataset", pairs_dir, "--calib_num", 2, "--calib_size", 40,
                 "--cpu_threads", 1, "--save_dir", save, "--output", out_md)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = table_rows(r.stdout)
    assert list(rows) == ["input (degraded)", "fp32", "fp16", "int8"]
    assert out_md.read_text() == r.stdout  # the table only on stdout (progress goes to stderr)
    assert "percentile 99.999 calibration on 2 crop(s) of 40px" in r.stdout and "3 image(s)" in r.stdout
    psnr = {k: float(v[1]) for k, v in rows.items()}
    fidelity = {k: float(v[5]) for k, v in rows.items() if k in ("fp16", "int8")}
    assert all(np.isfinite(list(psnr.values())))
    assert fidelity["fp16"] > FP16_MIN_FIDELITY
    assert 20 < fidelity["int8"] < fidelity["fp16"]  # int8 moves it more, but stays close
    assert abs(psnr["int8"] - psnr["fp32"]) < 3 and abs(psnr["fp16"] - psnr["fp32"]) < 0.1
    for k in ("fp32", "fp16", "int8"):
        assert float(rows[k][6]) > 0  # latency
    # the files: int8 weights really are int8 (per channel), fp16 keeps float32 inputs/outputs
    int8_path, fp16_path = str(save / "model_int8.onnx"), str(save / "model_fp16.onnx")
    assert onnx_model_precision(int8_path) == "int8" and onnx_model_precision(fp16_path) == "fp16"
    m = onnx.load(int8_path)
    assert any(t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4 for t in m.graph.initializer)
    assert os.path.getsize(int8_path) < 0.5 * os.path.getsize(os.path.join(tiny_export, "model.onnx"))
    h = onnx.load(fp16_path)
    assert h.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert h.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # the runners take them as --model_file with the matching --precision
    info = read_deploy_info(tiny_export)
    x = np.random.default_rng(0).random((1, 3, 32, 48), dtype=np.float32)
    y32 = OnnxRuntimeBackend(os.path.join(tiny_export, "model.onnx"), info).run(x)
    y8 = OnnxRuntimeBackend(int8_path, info, precision="int8").run(x)
    y16 = OnnxRuntimeBackend(fp16_path, info, precision="fp16").run(x)
    assert y8.shape == y16.shape == y32.shape
    assert np.abs(y16 - y32).max() < 0.05 * max(1.0, np.abs(y32).max())


def test_calibration_inputs_and_table(tiny_export, pairs_dir):
    info = read_deploy_info(tiny_export)  # HINet wf=8: multiples of 16, at least 32
    files = sorted(str(pairs_dir / "lq" / f) for f in os.listdir(pairs_dir / "lq"))
    crops = calibration_inputs(files, info, size=40)
    assert [c.shape for c in crops] == [(1, 3, 48, 48)] * 3  # 40 -> 48; smaller images reflect-padded
    assert all(c.dtype == np.float32 and 0 <= c.min() and c.max() <= 1 for c in crops)
    rows = [PrecisionRow("input (degraded)", 20.0, 0.5), PrecisionRow("fp32", 30.0, 0.9, latency_ms=100.0, size_mb=4.0),
            PrecisionRow("int8", 29.5, 0.88, 40.0, latency_ms=50.0, size_mb=1.0)]
    text = markdown_table(rows)
    assert "| int8 | 29.50 | 0.8800 | -0.50 | -0.0200 | 40.00 | 50.0 | 2.00x | 1.00 |" in text
    assert "| input (degraded) | 20.00 | 0.5000 | – |" in text


def test_errors_are_one_line(tiny_export, pairs_dir, tmp_path):
    no_onnx = tmp_path / "no_onnx"
    no_onnx.mkdir()
    (no_onnx / "inference.yml").write_text(open(os.path.join(tiny_export, "inference.yml")).read())
    cases = [
        (["--model_dir", no_onnx, "--dataset", pairs_dir], "tools/export_onnx.py"),
        (["--model_dir", tiny_export, "--dataset", tmp_path / "nothing"], "no such folder"),
        (["--model_dir", tiny_export], "--dataset"),
        (["--model_dir", tmp_path / "missing", "--dataset", pairs_dir, "--precisions", "fp32"], "inference.yml"),
    ]
    for args, words in cases:
        r = run_tool(*args)
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert r.returncode == 2 and len(errors) == 1 and words in errors[0], r.stderr[-2000:]
        assert "Traceback" not in r.stderr
    r = run_tool("--help")
    assert r.returncode == 0 and "--percentile" in r.stdout and "--calib_num" in r.stdout
