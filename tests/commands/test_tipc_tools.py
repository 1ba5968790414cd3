"""The TIPC helpers: config layout validation, result comparison, and the driver's own exit status."""
import os
import subprocess
import sys

from conftest import REPO

TIPC = os.path.join(REPO, "test_tipc")
CONFIGS = [os.path.join(TIPC, "configs", m, f) for m in ("mirnet", "hinet", "mimo_unet")
           for f in ("train_infer_python.txt", "train_linux_gpu_normal_normal_infer_python_linux_gpu_cpu.txt",
                     "model_linux_cpu_normal_normal_paddle2onnx_python_linux_cpu.txt",
                     "model_linux_cpu_normal_normal_serving_python_linux_cpu.txt", "train_ptq_infer_python.txt")]


def check(path):
    return subprocess.run([sys.executable, os.path.join(TIPC, "check_config.py"), str(path)],
                          capture_output=True, text=True)


def test_shipped_configs_are_well_formed():
    for path in CONFIGS:
        r = check(path)
        assert r.returncode == 0, r.stderr


def test_layout_errors_name_the_line(tmp_path):
    lines = open(CONFIGS[0]).read().split("\n")
    bad = tmp_path / "blank.txt"
    bad.write_text("\n".join(lines[:10] + [""] + lines[10:]))
    r = check(bad)
    assert r.returncode == 2 and "blank.txt:11: blank line" in r.stderr

    moved = tmp_path / "banner.txt"
    moved.write_text("\n".join(lines[:21] + lines[22:]))  # drop one '##': the eval banner moves up
    r = check(moved)
    assert r.returncode == 2 and "banner.txt:22: expected the separator '##'" in r.stderr

    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes("\r\n".join(lines).encode())
    assert "CRLF" in check(crlf).stderr


def test_compare_results_tolerates_ansi_and_blank_lines_and_catches_drift(tmp_path):
    gt = tmp_path / "python_m_results_fp32.txt"
    gt.write_text("image: a.png, psnr: 30.0000, ssim: 0.9\n\navg psnr: 30.0000, avg ssim: 0.9\n")
    good = tmp_path / "python_infer_cpu_precision_fp32.log"
    good.write_text("\x1b[33mnoise\x1b[0m\n\nimage: dir/a.png, psnr: 30.0300, ssim: 0.9\navg psnr: 30.03\n")
    bad = tmp_path / "python_infer_cpu_precision_fp32_b.log"
    bad.write_text("image: a.png, psnr: 29.5000, ssim: 0.9\navg psnr: 29.5\n")
    tool = [sys.executable, os.path.join(TIPC, "compare_results.py"), "--gt_file", str(gt), "--atol", "0.05"]
    r = subprocess.run(tool + ["--log_file", str(good)], capture_output=True, text=True)
    assert r.returncode == 0 and "consistent" in r.stdout
    r = subprocess.run(tool + ["--log_file", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and "a.png: psnr 29.5000 vs expected 30.0000" in r.stdout


def test_driver_exits_nonzero_and_logs_each_failure(tmp_path):
    """A config whose commands fail: every step is logged 'Run failed' and the driver exits 1."""
    text = open(CONFIGS[0]).read()
    text = text.replace("model_name:mirnet", "model_name:tipc_selftest")
    text = text.replace("norm_train:tools/train.py", "norm_train:tools/no_such_tool.py")
    text = text.replace("eval:tools/eval.py", "eval:tools/no_such_eval.py")
    text = text.replace("norm_export:tools/export_model.py", "norm_export:tools/no_such_export.py")
    text = text.replace("--enable_mkldnn:True|False", "--enable_mkldnn:False")
    cfg = tmp_path / "train_infer_python.txt"
    cfg.write_text(text)
    r = subprocess.run(["bash", "test_tipc/test_train_inference_python.sh", str(cfg), "lite_train_lite_infer"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    log = os.path.join(REPO, "test_tipc", "output", "tipc_selftest", "lite_train_lite_infer", "results_python.log")
    try:
        assert r.returncode == 1
        lines = [l for l in open(log).read().splitlines() if l.strip()]
        assert len(lines) == 4 and all("Run failed with command - tipc_selftest - " in l for l in lines)
        assert "4 commands, 4 failed" in r.stdout
    finally:
        import shutil
        shutil.rmtree(os.path.join(REPO, "test_tipc", "output", "tipc_selftest"), ignore_errors=True)


def test_driver_rejects_unknown_mode():
    r = subprocess.run(["bash", "test_tipc/test_train_inference_python.sh", CONFIGS[0], "quick"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "unknown MODE 'quick'" in r.stderr
