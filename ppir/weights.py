"""Loading and saving network weights (any format the converter reads in; `.pdparams` out)."""
from __future__ import annotations

import os

from . import _paddle  # noqa: F401 - sets the environment paddle reads on import
import paddle

from .convert import MatchReport, match_state_dict, read_weights_file
from .errors import CheckpointError
from .paths import atomic_target, sweep_stale_temps


def load_weights(model: paddle.nn.Layer, path: str, allow_partial: bool = False,
                 param_key: str | None = None) -> MatchReport:
    """Load weights from `path` into `model` by name and return the match report.

    Reads `.pdparams`, official PyTorch checkpoints and `.npz` without executing anything from the file.
    Missing, unexpected or mis-shaped tensors raise CheckpointError unless `allow_partial` is set, in which
    case the tensors that do match are loaded and the report says what did not.
    """
    wf = read_weights_file(path, param_key=param_key)
    report = match_state_dict(model, wf.state, layout=wf.layout)
    report.description = wf.description
    if not report.ok and not allow_partial:
        raise CheckpointError(f"{path} does not fit {type(model).__name__}: {report.summary()}")
    if not report.matched:
        raise CheckpointError(f"{path}: no tensor in the file matches {type(model).__name__}")
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in report.matched.items()})
    return report


def save_weights(model_or_state, path: str) -> None:
    """Write a `.pdparams` atomically: a temporary file in the same folder, then a rename. The file gets the
    umask's mode, like open(); a temporary left by an earlier, killed save of the same file is removed."""
    state = model_or_state.state_dict() if isinstance(model_or_state, paddle.nn.Layer) else model_or_state
    sweep_stale_temps(os.path.dirname(os.path.abspath(path)), os.path.basename(path))
    with atomic_target(path) as tmp:
        paddle.save(state, tmp)
