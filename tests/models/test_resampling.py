"""The export-safe building blocks of models/common.py against independent references (numpy, OpenCV).

The golden-parity tests cover them inside whole networks; these pin each block on its own, on sizes and
values the golden files do not hold (odd widths, border pixels, slopes above 1 and below 0).
"""
import cv2
import numpy as np
import paddle
import pytest

from ppir.models import common


def _run(fn, x):
    with paddle.no_grad():
        return fn(paddle.to_tensor(x)).numpy()


@pytest.mark.parametrize("shape", [(1, 3, 6, 10), (2, 5, 7, 3)])
def test_up_bilinear2_equals_opencv_half_pixel_bilinear(shape):
    # OpenCV's INTER_LINEAR up-scaling uses half-pixel centres and clamps at the border: PyTorch's
    # F.interpolate(mode="bilinear", align_corners=False) for a factor of 2.
    x = np.random.RandomState(0).rand(*shape).astype(np.float32)
    got = _run(common.up_bilinear2, x)
    n, c, h, w = shape
    want = np.stack([np.stack([cv2.resize(x[i, j], (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
                               for j in range(c)]) for i in range(n)])
    assert got.shape == (n, c, 2 * h, 2 * w)
    np.testing.assert_allclose(got, want, atol=2e-6)


@pytest.mark.parametrize("shape", [(1, 2, 8, 6), (1, 4, 2, 12)])
def test_antialias_down2_equals_reflect_padded_binomial_blur(shape):
    x = np.random.RandomState(1).rand(*shape).astype(np.float32)
    got = _run(common.antialias_down2, x)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    k = common.BINOMIAL_3x3
    h, w = shape[2] // 2, shape[3] // 2
    want = np.zeros(shape[:2] + (h, w), np.float64)
    for dy in range(3):
        for dx in range(3):
            want += k[dy, dx] * padded[:, :, dy:dy + 2 * h:2, dx:dx + 2 * w:2]
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("slope", [0.25, -0.5, 1.7, [0.1, 2.0, -1.0]])
def test_prelu_matches_its_definition_for_any_slope(slope):
    slopes = np.atleast_1d(np.array(slope, np.float32))
    layer = common.PReLU(num_parameters=slopes.size)
    layer._weight.set_value(slopes)
    x = np.random.RandomState(2).randn(2, 3, 4, 5).astype(np.float32)
    w = slopes.reshape(1, -1, 1, 1) if slopes.size > 1 else slopes
    want = np.where(x > 0, x, w * x)
    np.testing.assert_allclose(_run(layer, x), want, rtol=1e-6, atol=1e-7)
