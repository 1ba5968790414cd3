"""Match a foreign state dict (official PyTorch names, or Paddle names) to a Paddle model, by name.

Names carry over 1:1 because ppir's networks mirror the official module trees; what differs is decided by
the *type* of the Paddle layer that owns the tensor, never by position:

* InstanceNorm / GroupNorm / LayerNorm: torch `weight` -> Paddle `scale`;
* PReLU: torch `weight` -> Paddle `_weight`;
* BatchNorm: `running_mean` -> `_mean`, `running_var` -> `_variance`, `num_batches_tracked` dropped;
* Linear: weights are transposed (torch stores [out, in], Paddle [in, out]);
* Conv2D and Conv2DTranspose share torch's layout, so they are copied as they are.

Buffers that a network recomputes instead of storing (MIRNet's blur filter `filt`) are listed by the model
class in its facts (`ModelFacts.constant_torch_buffers`); they are checked against the expected constant and dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
import paddle.nn as nn

from ..models.common import model_facts

_NORMS_WITH_SCALE = (nn.InstanceNorm1D, nn.InstanceNorm2D, nn.InstanceNorm3D, nn.GroupNorm, nn.LayerNorm)
_BATCH_NORMS = (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.SyncBatchNorm)
_BN_RENAMES = {"running_mean": "_mean", "running_var": "_variance"}


@dataclass
class MatchReport:
    """What matching a source state dict to a model found; `ok` means every model tensor got a value."""

    matched: dict = field(default_factory=dict)        # paddle key -> array (ready for set_state_dict)
    renamed: dict = field(default_factory=dict)        # source key -> paddle key, where the name changed
    missing: list = field(default_factory=list)        # paddle keys nothing was given for
    unexpected: list = field(default_factory=list)     # source keys the model has no place for
    mismatched: list = field(default_factory=list)     # (paddle key, source shape, model shape)
    constants: list = field(default_factory=list)      # source keys checked as constant buffers and dropped
    bad_constants: list = field(default_factory=list)  # source keys named like a constant buffer but different

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched or self.bad_constants)

    def summary(self, limit: int = 5) -> str:
        def few(items):
            items = [str(i) for i in items]
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({few(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({few(self.unexpected)})")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} shape mismatches "
                         f"({few(f'{k}: file {tuple(s)} vs model {tuple(m)}' for k, s, m in self.mismatched)})")
        if self.bad_constants:
            parts.append(f"{len(self.bad_constants)} constant buffers differ from the fixed filter "
                         f"({few(self.bad_constants)})")
        return "; ".join(parts) if parts else f"all {len(self.matched)} tensors matched"


def resolve_layer(model: nn.Layer, path: str):
    """The sub-layer at a dotted path ('' is the model), or None if there is none."""
    layer = model
    for part in path.split(".") if path else []:
        subs = getattr(layer, "_sub_layers", None)
        if subs is None or part not in subs:
            return None
        layer = subs[part]
    return layer


def _candidates(layer, attr: str):
    """Paddle attribute names a source attribute may correspond to, for a layer of this type."""
    if isinstance(layer, _NORMS_WITH_SCALE) and attr == "weight":
        return ["scale", "weight"]
    if isinstance(layer, nn.PReLU) and attr == "weight":
        return ["_weight"]
    if isinstance(layer, _BATCH_NORMS) and attr in _BN_RENAMES:
        return [_BN_RENAMES[attr]]
    return [attr]


def match_state_dict(model: nn.Layer, source: dict, layout: str = "torch") -> MatchReport:
    """Map `source` (name -> numpy array) onto `model`'s state dict by name; see the module docstring.

    `layout` says whose conventions the source follows: "torch" (Linear weights get transposed) or "paddle".
    """
    if layout not in ("torch", "paddle"):
        raise ValueError(f"layout must be 'torch' or 'paddle', not {layout!r}")
    target = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    dtypes = {k: v.dtype for k, v in model.state_dict().items()}
    constants = model_facts(model).constant_torch_buffers
    report = MatchReport()
    for key, value in source.items():
        value = np.asarray(value)
        path, _, attr = key.rpartition(".")
        layer = resolve_layer(model, path)
        if key in target:
            dst = key
        elif layer is not None and isinstance(layer, _BATCH_NORMS) and attr == "num_batches_tracked":
            continue
        else:
            dst = None
            if layer is not None:
                for cand in _candidates(layer, attr):
                    name = f"{path}.{cand}" if path else cand
                    if name in target:
                        dst = name
                        break
        if dst is None:
            if attr in constants:
                expected = constants[attr](value.shape)
                if expected.shape == value.shape and np.allclose(value, expected, rtol=0, atol=1e-7):
                    report.constants.append(key)
                else:
                    report.bad_constants.append(key)
                continue
            report.unexpected.append(key)
            continue
        if layout == "torch" and isinstance(layer, nn.Linear) and attr == "weight" and value.ndim == 2:
            value = value.T
        if tuple(value.shape) != target[dst]:
            report.mismatched.append((dst, tuple(value.shape), target[dst]))
            continue
        if dst != key:
            report.renamed[key] = dst
        report.matched[dst] = value.astype(_numpy_dtype(dtypes[dst]), copy=False)
    report.missing = [k for k in target if k not in report.matched and
                      k not in {m[0] for m in report.mismatched}]
    return report


def _numpy_dtype(paddle_dtype) -> np.dtype:
    name = str(paddle_dtype).split(".")[-1]
    return np.dtype({"bfloat16": "float32"}.get(name, name))
