"""tools/predict.py end to end: any image size in, same size out; bad files reported, others kept."""
import os

import cv2
import numpy as np
import paddle
import pytest
import skimage.data

import ppir

from conftest import REPO, run_tool_here as run_tool  # in this process: the tool, not a fresh interpreter, is tested

SMALL = {  # reduced widths keep the CPU test quick; the code paths are the full networks'
    "hinet": ("hinet_sidd_0.5x.yml", ["model.wf=8"]),
    "mimo_unet": ("mimo_unet_gopro.yml", ["model.num_res=1"]),
    "mirnet": ("mirnet_sidd.yml", ["model.n_feat=8", "model.n_RRG=1", "model.n_MSRB=1"]),
}


def make_weights(tmp_path, name):
    config, overrides = SMALL[name]
    paddle.seed(0)
    model = ppir.build_model(os.path.join(REPO, "configs", config), overrides)
    path = str(tmp_path / f"{name}.pdparams")
    ppir.save_weights(model, path)
    return model, config, overrides, path


@pytest.mark.parametrize("name", sorted(SMALL))
def test_predict_keeps_size_of_odd_image(tmp_path, name):
    model, config, overrides, weights = make_weights(tmp_path, name)
    img = skimage.data.chelsea()  # 300 x 451, neither side a multiple of 4 or 16
    src = tmp_path / "cat.png"
    cv2.imwrite(str(src), img[:, :, ::-1])
    r = run_tool("predict", "-c", f"configs/{config}", "-o", *overrides, "--weights", weights,
                 "--input", src, "--output", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    out = cv2.imread(str(tmp_path / "out" / "cat.png"))
    assert out.shape == (300, 451, 3)


def test_predict_matches_the_network(tmp_path):
    """The tool's output is the network's output on the RGB [0,1] image, clipped and rounded."""
    model, config, overrides, weights = make_weights(tmp_path, "mimo_unet")
    rgb = skimage.data.astronaut()[100:164, 200:280]  # 64 x 80: no padding needed
    cv2.imwrite(str(tmp_path / "a.png"), rgb[:, :, ::-1])
    r = run_tool("predict", "-c", f"configs/{config}", "-o", *overrides, "--weights", weights,
                 "--input", tmp_path / "a.png", "--output", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    got = cv2.imread(str(tmp_path / "out" / "a.png"))[:, :, ::-1].astype(int)
    model.eval()
    x = paddle.to_tensor(rgb.transpose(2, 0, 1)[None].astype("float32") / 255)
    with paddle.no_grad():
        y = model(x)[-1].numpy()[0].transpose(1, 2, 0)
    want = np.rint(np.clip(y, 0, 1) * 255).astype(int)
    assert np.abs(got - want).max() <= 1
    assert np.abs(got - rgb.astype(int)).mean() > 1  # random weights do change the image


def test_predict_folder_with_a_corrupt_file(tmp_path):
    _, config, overrides, weights = make_weights(tmp_path, "hinet")
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "good.png"), skimage.data.astronaut()[:40, :50])
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (src / "notes.txt").write_text("ignored: not an image")
    r = run_tool("predict", "-c", f"configs/{config}", "-o", *overrides, "--weights", weights,
                 "--input", src, "--output", tmp_path / "out")
    assert r.returncode == 1
    assert "broken.png" in r.stderr and "Traceback" not in r.stderr
    assert os.listdir(tmp_path / "out") == ["good.png"]
    assert cv2.imread(str(tmp_path / "out" / "good.png")).shape == (40, 50, 3)


def test_predict_missing_input_and_weights(tmp_path):
    _, config, overrides, weights = make_weights(tmp_path, "hinet")
    r = run_tool("predict", "-c", f"configs/{config}", "--weights", weights,
                 "--input", tmp_path / "nothing", "--output", tmp_path / "out")
    assert r.returncode == 2 and "nothing: no such file or folder" in r.stderr
    cv2.imwrite(str(tmp_path / "a.png"), skimage.data.astronaut()[:32, :32])
    r = run_tool("predict", "-c", f"configs/{config}", "--weights", tmp_path / "none.pdparams",
                 "--input", tmp_path / "a.png", "--output", tmp_path / "out")
    assert r.returncode == 2 and "weights file not found" in r.stderr
