"""The HTTP server on the device (`deploy/serving/server.py --use-gpu`): it starts, logs the device its predictors
really run on (the backend's own word, read back from the predictor process), and answers like the Paddle Inference runner on the CPU (8-bit outputs within one level: float32 rounding on a
GPU may tip a value across a rounding boundary)."""
import base64
import os

import cv2
import numpy as np

from ppir.infer.deploy_info import read_deploy_info
from ppir.infer.backends import PaddleInferenceBackend
from ppir.infer.restorer import ImageRestorer
from ppir.serving import launch
from ppir.serving.client import post_json

from conftest import REPO

SERVER = os.path.join(REPO, "deploy", "serving", "server.py")


def test_server_on_device_matches_cpu_runner(device, tmp_path, tiny_hinet_export):
    folder = tiny_hinet_export
    args = ["--port", "0", "--model_dir", folder, "--workers", 1] + (["--use-gpu"] if device != "cpu" else [])
    srv = launch.start_server(args, str(tmp_path / "server.log"), timeout=180, cwd=REPO, script=SERVER)
    try:
        rng = np.random.default_rng(0)
        img = rng.integers(0, 256, (70, 100, 3), dtype=np.uint8)
        data = cv2.imencode(".png", img)[1].tobytes()
        status, _, body = post_json(srv.url + "/image-restoration", {"image": base64.b64encode(data).decode()}, 120)
        assert status == 200, body
        out = cv2.imdecode(np.frombuffer(base64.b64decode(body["result"]["image"]), np.uint8), cv2.IMREAD_COLOR)
        info = read_deploy_info(folder)
        local = ImageRestorer(PaddleInferenceBackend(folder, info), info)(img[:, :, ::-1].astype(np.float32) / 255)
        assert np.abs(out[:, :, ::-1].astype(int) - local.astype(int)).max() <= 1
        # the start-up line names the device; "gpu:0" only if the predictor really runs there
        assert f" on paddle_inference, device {device}, " in srv.log(), srv.log()[-2000:]
    finally:
        srv.stop()
