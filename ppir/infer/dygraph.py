"""Running a dygraph network on numpy arrays (`run_network`, behind `backends.DygraphBackend`), the wrapper that
export traces, and the DeployInfo of a model that was never exported (so `ImageRestorer` restores with it as
with an export)."""
from __future__ import annotations

import numpy as np
from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
import paddle

from ..models.common import input_channels, model_facts, size_rules
from .deploy_info import DeployInfo
from .pipeline import final_output


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


def model_info(model: paddle.nn.Layer, **fields) -> DeployInfo:
    """The DeployInfo of a dygraph network, as its export would write it: its name, size rules
    (`ppir.models.common.size_rules`) and input channels, plus `fields` (rounding, tile, input_shape, ...).
    What lets `ImageRestorer` run a model that was never exported, through `DygraphBackend`."""
    multiple, min_size = size_rules(model)
    channels = input_channels(model)
    fields.setdefault("input_shape", [None, channels, None, None])
    fields.setdefault("image_wide", model_facts(model).image_wide)  # for the memory planner's tiling note
    return DeployInfo(model_name=type(model).__name__, size_multiple=multiple, min_size=min_size,
                      in_channels=channels, **fields)
