"""ppir.Restorer: the Python API gives what `ppir predict` saves, on uint8 and float arrays, and refuses arrays
that are no image with one line."""
import os

import cv2
import numpy as np
import paddle
import pytest
import skimage.data

import ppir
from ppir.export import export_model

from conftest import REPO, run_tool_here as run_tool

CONFIG = os.path.join(REPO, "configs", "hinet_sidd_0.5x.yml")
OVERRIDES = ["model.wf=8"]  # a narrow HINet keeps the CPU test quick; the code paths are the full network's


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    paddle.seed(0)
    path = str(tmp_path_factory.mktemp("api") / "hinet.pdparams")
    ppir.save_weights(ppir.build_model(CONFIG, OVERRIDES), path)
    return path


@pytest.fixture(scope="module")
def restorer(weights):
    return ppir.Restorer(CONFIG, weights, OVERRIDES)


@pytest.mark.parametrize("tile", [0, 32])
def test_uint8_output_equals_what_predict_saves(tmp_path, weights, restorer, tile):
    rgb = np.ascontiguousarray(skimage.data.chelsea()[40:90, 100:171])  # 50 x 71: padded to HINet's 16
    cv2.imwrite(str(tmp_path / "cat.png"), rgb[:, :, ::-1])
    r = run_tool("predict", "-c", CONFIG, "-o", *OVERRIDES, "--weights", weights, "--input", tmp_path / "cat.png",
                 "--output", tmp_path / "out", "--tile", tile, "--tile-overlap", 8)
    assert r.returncode == 0, r.stderr
    saved = cv2.imread(str(tmp_path / "out" / "cat.png"))[:, :, ::-1]
    out = (ppir.Restorer(CONFIG, weights, OVERRIDES, tile=tile, tile_overlap=8) if tile else restorer)(rgb)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    np.testing.assert_array_equal(out, saved)
    assert np.abs(out.astype(int) - rgb).mean() > 1  # random weights do change the image


def test_float_input_gives_float32_in_range(restorer):
    rgb = skimage.data.astronaut()[:48, :64]
    out = restorer(rgb.astype(np.float64) / 255)
    assert out.dtype == np.float32 and out.shape == (48, 64, 3)
    assert 0.0 <= out.min() and out.max() <= 1.0
    # the same image as uint8: the same result, rounded to the nearest level
    np.testing.assert_array_equal(np.rint(out * 255).astype(np.uint8), restorer(rgb))


def test_gray_input_is_restored_as_rgb(restorer):
    gray = skimage.data.camera()[:32, :48]
    out = restorer(gray)
    np.testing.assert_array_equal(out, restorer(np.stack([gray] * 3, axis=-1)))


@pytest.mark.parametrize("array, message", [
    (np.zeros(10, np.uint8), "expected an H x W x 3 RGB array"),
    (np.zeros((8, 8, 2), np.float32), "got shape (8, 8, 2)"),
    (np.zeros((0, 8, 3), np.uint8), "the image is empty"),
    (np.full((8, 8, 3), np.nan, np.float32), "192 of 192 values are NaN or infinite"),
    (np.array([["a"]]), "must hold numbers"),
    (np.zeros((8, 8, 3), np.int32), "must be uint8 or uint16"),
])
def test_bad_arrays_get_one_line(restorer, array, message):
    with pytest.raises(ppir.ImageError) as e:
        restorer(array)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_an_export_folder_runs_the_same_network(tmp_path, weights, restorer):
    model = ppir.build_model(CONFIG, OVERRIDES)
    ppir.load_weights(model, weights)
    export_model(model, str(tmp_path / "export"))
    exported = ppir.Restorer.from_export(str(tmp_path / "export"))
    rgb = skimage.data.astronaut()[:48, :64]
    assert np.abs(exported(rgb).astype(int) - restorer(rgb).astype(int)).max() <= 1
    with pytest.raises(ppir.PPIRError, match="inference.yml"):
        ppir.Restorer.from_export(str(tmp_path))


def test_an_export_gives_what_ppir_infer_saves(tmp_path, capsys):
    """from_export's uint8 output is what `ppir infer` saves (MIMO-UNet's export rounds half up; the two roundings
    differ only at exact halves, so this checks the whole path rather than the choice of rounding)."""
    from ppir.__main__ import main

    paddle.seed(0)
    model = ppir.build_model(os.path.join(REPO, "configs", "mimo_unet_gopro.yml"), ["model.num_res=1"])
    for p in model.parameters():  # small weights: the output stays near the input, not saturated at 0 or 255
        p.set_value(p * 0.5)
    info = export_model(model, str(tmp_path / "export"))
    assert info.rounding == "half_up"
    rgb = np.ascontiguousarray(skimage.data.chelsea()[:52, :70])
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "cat.png"), rgb[:, :, ::-1])
    assert main(["infer", "--model_dir", tmp_path / "export", "--image_dir", tmp_path / "in",
                 "--save_dir", tmp_path / "out"]) == 0, capsys.readouterr().err
    saved = cv2.imread(str(tmp_path / "out" / "cat.png"))[:, :, ::-1]
    out = ppir.Restorer.from_export(str(tmp_path / "export"))(rgb)
    np.testing.assert_array_equal(out, saved)
    assert np.count_nonzero((out > 0) & (out < 255)) > out.size // 2  # mostly unsaturated: rounding matters
    assert np.abs(out.astype(int) - rgb).mean() > 0.5  # and the network did change the image
