"""Restoring numpy images with a dygraph network (used by tools/predict.py and for checks)."""
from __future__ import annotations

import numpy as np
import paddle

from .pipeline import final_output, postprocess, preprocess


class DygraphRestorer:
    """Call with an HxWx3 RGB float image in [0, 1]; returns the restored image of the same size."""

    def __init__(self, model: paddle.nn.Layer):
        self.model = model
        self.model.eval()
        self.multiple = int(getattr(model, "size_multiple", 1))
        self.min_size = int(getattr(model, "min_size", 0))

    def __call__(self, img_rgb: np.ndarray) -> np.ndarray:
        h, w = img_rgb.shape[:2]
        x = preprocess(img_rgb, self.multiple, self.min_size)
        with paddle.no_grad():
            y = final_output(self.model(paddle.to_tensor(x)))
        return postprocess(y.numpy(), h, w)
