import glob
import json
import os
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

GOLDEN_DIR = os.environ.get("PPIR_GOLDEN_DIR", os.path.join(os.path.dirname(REPO), "shared", "golden"))


def golden_files():
    return sorted(glob.glob(os.path.join(GOLDEN_DIR, "*.npz")))


def golden_meta(path):
    with np.load(path, allow_pickle=False) as d:
        return json.loads(str(d["meta/json"]))


@pytest.fixture(scope="session")
def require_golden():
    """The golden fixtures live beside the repo (../shared/golden); CI must have them, a user may not."""
    if not golden_files():
        msg = f"no golden fixtures in {GOLDEN_DIR} (set PPIR_GOLDEN_DIR)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def tiny_hinet():
    """HINet at width 8 in eval mode, with the golden weights when they are there (else Paddle's init)."""
    import ppir

    model = ppir.build_model(os.path.join(REPO, "configs", "hinet_sidd_0.5x.yml"), ["model.wf=8"])
    golden = os.path.join(GOLDEN_DIR, "hinet_wf8.npz")
    if os.path.isfile(golden):
        ppir.load_weights(model, golden)
    model.eval()
    return model


def export_tiny_hinet(folder, input_shape=None, opset_version=13):
    """`tiny_hinet()` exported into `folder` (Paddle program + inference.yml) with its model.onnx."""
    from ppir.export import export_model, run_paddle2onnx

    export_model(tiny_hinet(), folder, input_shape=input_shape)
    run_paddle2onnx(folder, os.path.join(folder, "model.onnx"), opset_version=opset_version)
    return folder


def run_tool(name, *args, cwd=None, timeout=600):
    """Run tools/<name>.py in a fresh interpreter, as a user would."""
    import subprocess

    cmd = [sys.executable, os.path.join(REPO, "tools", name + ".py"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd or REPO, timeout=timeout)
