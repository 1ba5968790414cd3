"""Restoring numpy images with a dygraph network (used by tools/predict.py and for checks)."""
from __future__ import annotations

import numpy as np
import paddle

from ..models.common import input_channels, model_facts
from .memory import MemoryPlanner
from .pipeline import final_output, postprocess, preprocess, to_nchw
from .tiling import check_tile, run_tiled


class FinalOutput(paddle.nn.Layer):
    """Wraps a network so that it returns only its restored image (`final_output`): what gets exported."""

    def __init__(self, net: paddle.nn.Layer):
        super().__init__()
        self.net = net

    def forward(self, x):
        return final_output(self.net(x))


def run_network(model: paddle.nn.Layer, nchw: np.ndarray) -> np.ndarray:
    """One forward pass without gradients: N x C x H x W float32 in, the final output as numpy out."""
    with paddle.no_grad():
        return final_output(model(paddle.to_tensor(np.ascontiguousarray(nchw, dtype=np.float32)))).numpy()


class DygraphRestorer:
    """Call with an HxWx3 RGB float image in [0, 1]; returns the restored image of the same size.

    `tile` > 0 restores overlapping tiles of that size (`ppir.infer.tiling`) instead of the whole image. Without
    a tile, an image that would need more than `max_memory` bytes whole is tiled too (`ppir.infer.memory`);
    `notes` (e.g. print) is told why.
    """

    def __init__(self, model: paddle.nn.Layer, tile: int = 0, tile_overlap: int = 32, blend: str = "smooth",
                 max_memory: int = 0, notes=None):
        self.model = model
        self.model.eval()
        self.multiple = int(getattr(model, "size_multiple", 1))
        self.min_size = int(getattr(model, "min_size", 0))
        self.tile, self.tile_overlap, self.blend = int(tile or 0), int(tile_overlap), blend
        if self.tile:
            check_tile(self.tile, self.tile_overlap, self.multiple, self.min_size, blend)
        self.planner = MemoryPlanner(self._run, 0 if self.tile else max_memory, input_channels(model),
                                     self.multiple, self.min_size, self.tile_overlap if blend == "smooth" else 0,
                                     model_name=type(model).__name__, image_wide=model_facts(model).image_wide)
        self.notes = notes

    def _run(self, nchw: np.ndarray) -> np.ndarray:
        return run_network(self.model, nchw)

    def __call__(self, img_rgb: np.ndarray, name: str = "image") -> np.ndarray:
        h, w = img_rgb.shape[:2]
        tile = self.tile
        if not tile:
            tile, note = self.planner.tile_for(h, w, name)  # ImageError when not even small tiles fit
            if note and self.notes:
                self.notes(note)
        if tile:
            y = run_tiled(self._run, to_nchw(img_rgb), tile, self.tile_overlap, self.blend,
                          multiple=self.multiple, min_size=self.min_size)
        else:
            y = run_network(self.model, preprocess(img_rgb, self.multiple, self.min_size))
        return postprocess(y, h, w)
