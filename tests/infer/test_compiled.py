"""Networks compiled in-process (`make_backend("paddle" | "onnxruntime" | "auto", model)`, `ppir.infer.compile`):
the same outputs as dygraph within the export tolerance, a clean fallback to dygraph, no temporary folder left,
and the same scores through predict / eval / evaluate() as on dygraph."""
import glob
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
import skimage.data
import yaml

import ppir
from ppir.engine.trainer import init_like_torch
from ppir.export import max_rel_diff
from ppir.infer import compile as compile_module
from ppir.infer.backends import (BackendError, DygraphBackend, OnnxRuntimeBackend, PaddleInferenceBackend,
                                 make_backend)
from ppir.infer.compile import TEMP_PREFIX

from conftest import REPO, TINY_NETWORKS

TOLERANCE = 1e-4  # export.verify_onnx's default: what an exported program may differ from dygraph by


def tiny(net):
    paddle.seed(0)
    model = ppir.build_model(dict(TINY_NETWORKS[net][0]))
    init_like_torch(model)  # Paddle's default init makes MIRNet's activations explode
    model.eval()
    return model


def leftovers(folder):
    return glob.glob(os.path.join(str(folder), TEMP_PREFIX + "*"))


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """tempfile's folder pointed at an empty one, to see what compiling leaves there."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.parametrize("net", sorted(TINY_NETWORKS))
def test_compiled_backends_equal_dygraph(net, private_tmp):
    model = tiny(net)
    rng = np.random.default_rng(0)
    inputs = [rng.random((1, 3, 32, 48), dtype=np.float32), rng.random((2, 3, 48, 32), dtype=np.float32)]
    dyg = make_backend("dygraph", model)
    refs = [dyg.run(x) for x in inputs]
    lines = []
    for kind, cls in (("paddle", PaddleInferenceBackend), ("onnxruntime", OnnxRuntimeBackend)):
        backend = make_backend(kind, model, notes=lines.append)
        assert isinstance(backend, cls)
        assert leftovers(private_tmp) == []  # the program lives in the predictor/session only
        for x, ref in zip(inputs, refs):  # one program, several shapes and batch sizes
            assert max_rel_diff(backend.run(x), ref) <= TOLERANCE, (kind, x.shape)
    name = type(model).__name__
    assert [ln.split(" in ")[0] for ln in lines] == [f"compiled {name} for Paddle Inference + oneDNN",
                                                      f"compiled {name} for ONNX Runtime"]
    assert all(ln.endswith(" s") for ln in lines)


def test_auto_falls_back_to_dygraph_with_one_note(monkeypatch, capsys, private_tmp):
    model = tiny("hinet")

    def broken(*args, **kwargs):
        raise RuntimeError("no static graph today\nsecond line of the cause")

    monkeypatch.setattr(compile_module, "save_program", broken)
    backend = make_backend("auto", model)
    assert isinstance(backend, DygraphBackend)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["note: cannot compile HINet for Paddle Inference + oneDNN: RuntimeError: no static graph today; "
                   "using dygraph"]
    assert leftovers(private_tmp) == []  # removed although compiling failed half-way
    with pytest.raises(BackendError, match=r"^cannot compile HINet for ONNX Runtime: RuntimeError: no static"):
        make_backend("onnxruntime", model)  # asked for explicitly: an error, no fallback
    with pytest.raises(BackendError, match="backend auto chooses for a network"):
        make_backend("auto", str(private_tmp))


def write_eval_run(tmp_path):
    cfg = {"model": dict(TINY_NETWORKS["hinet"][0]),
           "datasets": {"val": {"type": "SyntheticDataset", "degradation": "gaussian_noise",
                                "images": ["chelsea", "coffee"], "size": [37, 50], "num_samples": 2, "seed": 4}},
           "metrics": [{"type": "PSNR"}, {"type": "SSIM"}], "train": {"output_dir": str(tmp_path / "out")}}
    cfg_path = tmp_path / "eval.yml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    weights = tmp_path / "w.pdparams"
    ppir.save_weights(tiny("hinet"), str(weights))
    return cfg_path, weights


def test_eval_and_predict_same_scores_on_both_backends(tmp_path, capsys):
    from ppir.commands import eval as eval_cmd

    cfg_path, weights = write_eval_run(tmp_path)
    scores, stderr = {}, {}
    for backend in ("dygraph", "auto"):
        out = tmp_path / backend
        assert eval_cmd.main(["-c", str(cfg_path), "--weights", str(weights), "--output", str(out),
                              "--backend", backend]) == 0
        stderr[backend] = capsys.readouterr().err
        scores[backend] = json.loads((out / "metrics.json").read_text())
    assert "compiled HINet for Paddle Inference + oneDNN in" in stderr["auto"]  # auto's CPU choice
    assert "compiled" not in stderr["dygraph"]
    assert (scores["dygraph"]["backend"], scores["auto"]["backend"]) == ("dygraph", "paddle_inference")
    for a, b in zip(scores["dygraph"]["per_image"], scores["auto"]["per_image"]):
        assert abs(a["psnr"] - b["psnr"]) <= 1e-3 and abs(a["ssim"] - b["ssim"]) <= 1e-5

    # predict in a fresh process, as users run it: the compiled folder is gone afterwards, the images agree
    src = tmp_path / "cat.png"
    cv2.imwrite(str(src), skimage.data.chelsea()[:61, :75, ::-1])
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    images = {}
    for backend in ("dygraph", "auto"):
        r = subprocess.run([sys.executable, "-m", "ppir", "predict", "-c", str(cfg_path), "--weights", str(weights),
                            "--input", str(src), "--output", str(tmp_path / f"pred_{backend}"), "--backend", backend],
                           capture_output=True, text=True, cwd=REPO, env={**os.environ, "TMPDIR": str(tmp)},
                           timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        images[backend] = cv2.imread(str(tmp_path / f"pred_{backend}" / "cat.png")).astype(int)
    assert "compiled HINet for Paddle Inference + oneDNN in" in r.stderr
    assert leftovers(tmp) == []
    assert images["auto"].shape == (61, 75, 3) and np.abs(images["auto"] - images["dygraph"]).max() <= 1


def test_evaluate_protocols_same_on_compiled():
    """Whole images, tiles, HINet's grids and the self-ensemble: the same PSNR on the compiled program."""
    from ppir.data import SyntheticDataset
    from ppir.engine.evaluator import evaluate

    paddle.seed(1)
    hinet = ppir.build_model({"type": "HINet", "wf": 4, "depth": 2})
    init_like_torch(hinet)
    ds = SyntheticDataset(images=["chelsea"], size=[40, 52], num_samples=2, seed=1)
    protocols = [{}, {"tile": 24, "tile_overlap": 8}, {"tile": 24, "grids": True}, {"self_ensemble": True}]
    for backend, protocol in [("auto", p) for p in protocols] + [("onnxruntime", {})]:
        ref = evaluate(hinet, ds, [{"type": "PSNR"}], backend="dygraph", **protocol).metrics["psnr"]
        got = evaluate(hinet, ds, [{"type": "PSNR"}], backend=backend, **protocol).metrics["psnr"]
        assert abs(got - ref) <= 1e-3, (backend, protocol)
    assert hinet.training  # evaluate() restores the mode it found, whichever backend


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_backend_in_help(command, capsys):
    from ppir.__main__ import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--backend {auto,dygraph,paddle,onnxruntime}" in capsys.readouterr().out


# ------------------------------------------------------------------------- the process after a predictor run
def _gradients(model, x):
    """Every parameter's gradient of a fixed loss on `x`, as numpy arrays (HINet: no dropout, so deterministic)."""
    model.train()
    for p in model.parameters():
        p.clear_gradient()
    out = model(paddle.to_tensor(x))
    (out[-1] if isinstance(out, (list, tuple)) else out).square().mean().backward()
    grads = {p.name: p.grad.numpy().copy() for p in model.parameters()}
    model.eval()
    return grads


def test_a_predictor_run_leaves_the_process_math_threads_and_training_arithmetic_as_they_were():
    # Paddle Inference's predictor ends every run by setting MKL and OpenMP to 1 thread process-wide; dygraph
    # training after a compiled validation then ran single-threaded, and on AMD EPYC with other float32 bits
    # (the validation-backend test's weights differed by 7e-9). The backend puts the counts back.
    from ppir.infer.math_threads import math_threads

    before = math_threads()
    if before is None:
        pytest.skip("this Paddle build ships no libmklml_intel.so/libiomp5.so to read the thread counts from")
    model = tiny("hinet")
    x = np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)
    reference = _gradients(model, x)
    backend = make_backend("paddle", model, options={"enable_mkldnn": True})
    backend.run(x[:1])
    assert math_threads() == before
    after = _gradients(model, x)
    assert all(np.array_equal(reference[k], after[k]) for k in reference)
    # what the guard is for: the raw predictor leaves one thread (Paddle 3.3.1's behaviour)
    backend.predictor.run()
    assert math_threads() == (1, 1)
    from ppir.infer.math_threads import _set

    _set(before)
    assert math_threads() == before


def test_without_readable_math_libraries_the_starting_thread_count_is_restored(monkeypatch):
    from paddle.base import core

    from ppir.infer import math_threads as mt

    real = mt._libraries()
    if real[0] is None:
        pytest.skip("this Paddle build ships no libmklml_intel.so/libiomp5.so to read the thread counts from")
    before = mt.math_threads()
    monkeypatch.setattr(mt, "_LIBS", (None, None))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the count MKL and OpenMP would start with (MKL caps at the cores)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with mt.kept_math_threads():
        core.set_num_threads(2)
    monkeypatch.setattr(mt, "_LIBS", real)
    assert mt.math_threads() == (1, 1)
    mt._set(before)
