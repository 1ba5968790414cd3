"""Model size and compute: parameter counts and the multiply-accumulates (MACs) of one forward pass.

What is counted are "true MACs" (one multiply-accumulate of a learned layer = 1; fixed resampling, norms and
activations are not counted; docs/models/*.md compare them with the published figures), from forward hooks on
the learned layers, once per call (a layer used twice, like MIRNet's shared DAUs and SKFF[0], counts twice):

* `nn.Conv2D`: output elements x Cin/groups x kh x kw;
* `nn.Conv2DTranspose`: *input* elements x Cout/groups x kh x kw (thop counts output elements instead, which
  is 4x too much for the stride-2 layers);
* `nn.Linear`: output elements x in_features (none of the three networks has one).

Bias adds, activations, normalisation, pooling and other elementwise work are left out. So are the fixed
resampling kernels of `ppir/models/common.py` (nearest/bilinear x2, MIRNet's anti-aliasing blur): they are
functional ops built in `forward`, not layers, and they are deliberately not counted. Upstream's MIRNet
keeps its blur in Conv2d-like modules, which is why the reference's 479.95 G for MIRNet at 256x256 includes
about 0.5 G of blur that ppir's count does not.

The model-zoo "Flops(G)" columns are none of this: they are 2/0.9 = 2.22 x thop's MACs (models.md §3).

Counting a large input cheaply (`proxy=k`). These networks are fully convolutional, so a convolution's
MACs are (pixels at its level) x (a constant): when H and W divide evenly at every level, that part scales
exactly with H*W. The exception is a layer applied after global pooling (MIRNet's channel attention and
SKFF's squeeze convolutions), whose MACs do not depend on the size at all. `count_macs(model, shape, proxy=k)`
therefore runs the network at (H/k, W/k) and once more at its smallest valid size, pairs the two runs'
layer calls, and sorts each call into "scales with H*W" (multiplied by k*k) or "constant" (taken once).
A call that is neither raises, so the result is exact or an error, never an estimate.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from .errors import ConfigError, PPIRError
from .models.common import input_channels, model_facts, padded_size, shape_problem, size_rules

FALLBACK_SIDE = 256  # networks that declare no seed shape: 256x256, rounded up to what they accept

KINDS = ("conv", "conv_transpose", "linear")


class ProfileError(PPIRError):
    """A network's MACs cannot be derived exactly from a proxy size (count it with proxy=1)."""


@dataclasses.dataclass
class MacCount:
    """MACs of one forward pass at `shape`, with the split the proxy computation needs anyway."""

    shape: tuple  # N, C, H, W counted for
    proxy: int  # the factor k the count was scaled from (1: counted at `shape` itself)
    by_kind: dict  # "conv" / "conv_transpose" / "linear" -> MACs at `shape`
    constant: int  # the part that does not depend on H, W (layers after global pooling)
    calls: int  # counted layer calls in one forward pass

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    @property
    def spatial(self) -> int:
        """The part proportional to H*W."""
        return self.total - self.constant


@dataclasses.dataclass
class ModelProfile:
    """What tools/model_info.py prints for one network."""

    name: str  # the model class (registry name), e.g. "HINet"
    params: int  # distinct trainable numbers (shared parameters once, like PyTorch's parameters())
    macs: MacCount
    source: str = ""  # the config it came from, if any
    shape_origin: str = "given"  # "given", "export.input_shape", "seed shape" or "default"

    @property
    def shape(self) -> tuple:
        return self.macs.shape

    @property
    def gmacs(self) -> float:
        return self.macs.total / 1e9


# ------------------------------------------------------------------------------------------ shapes
def default_shape(model, cfg=None) -> tuple:
    """The shape to profile at when none is given.

    A config's `export.input_shape` (a fixed deployment shape) comes first; then the seed shape of the
    network (`ModelFacts.seed_shape`); otherwise 1 x C x 256 x 256 rounded up to what the network accepts.
    """
    return default_shape_and_origin(model, cfg)[0]


def default_shape_and_origin(model, cfg=None) -> tuple[tuple, str]:
    """`default_shape` and where it came from ("export.input_shape", "seed shape" or "default")."""
    fixed = ((cfg.get("export") or {}).get("input_shape")) if cfg is not None else None
    if fixed:
        return parse_shape(fixed), "export.input_shape"
    seed = model_facts(model).seed_shape
    if seed:
        return tuple(seed), "seed shape"
    multiple, min_size = size_rules(model)
    side = padded_size(FALLBACK_SIDE, multiple, min_size)
    return (1, input_channels(model), side, side), "default"


def parse_shape(text) -> tuple:
    """'256x256', '360,640', '1x3x360x640' or a sequence -> (N, C, H, W) (N=1, C=3 when only H, W are given)."""
    if isinstance(text, str):
        parts = [t for t in text.replace("x", ",").replace("X", ",").split(",") if t.strip()]
        try:
            dims = [int(t) for t in parts]
        except ValueError:
            raise ConfigError(f"a shape is H,W or N,C,H,W integers (e.g. 256x256 or 1x3x360x640), got {text!r}") \
                from None
    else:
        try:
            dims = [int(t) for t in text]
        except (TypeError, ValueError):
            raise ConfigError(f"a shape is H,W or N,C,H,W integers, got {text!r}") from None
    if len(dims) == 2:
        dims = [1, 3, *dims]
    if len(dims) != 4 or min(dims) <= 0:
        raise ConfigError(f"a shape is 2 (H,W) or 4 (N,C,H,W) positive integers, got {text!r}")
    return tuple(dims)


def check_shape(model, shape) -> None:
    """ConfigError unless the network accepts `shape` (channels, multiples, minimum size)."""
    problem = shape_problem(model, shape)
    if problem:
        raise ConfigError(problem)


def valid_proxies(model, shape, max_factor: int | None = None) -> list[int]:
    """Every factor k (1 first) for which (H/k, W/k) is a valid input whose levels all divide evenly."""
    n, c, h, w = shape
    top = min(h, w) if max_factor is None else min(max_factor, h, w)
    return [k for k in range(1, top + 1)
            if h % k == 0 and w % k == 0 and shape_problem(model, (n, c, h // k, w // k)) is None]


def auto_proxy(model, shape, max_factor: int | None = None) -> int:
    """The largest valid proxy factor (<= max_factor when given; 1 when there is none).

    The largest is the fastest, and no less exact: `mac_count` checks every layer call, whatever the factor.
    """
    ks = valid_proxies(model, shape, max_factor)
    return ks[-1] if ks else 1


# ------------------------------------------------------------------------------------------ counting
def _record_calls(model, shape) -> list[tuple[str, int]]:
    """(kind, MACs) of every conv / transposed conv / linear call in one forward pass on zeros of `shape`."""
    import numpy as np
    from . import _paddle  # noqa: F401 - sets the environment paddle reads on import
    import paddle
    import paddle.nn as nn

    calls = []

    def conv_hook(layer, inputs, output):
        w = layer.weight.shape  # [out, in/groups, kh, kw]
        calls.append(("conv", int(np.prod(output.shape)) * w[1] * w[2] * w[3]))

    def convt_hook(layer, inputs, output):
        w = layer.weight.shape  # [in, out/groups, kh, kw]
        calls.append(("conv_transpose", int(np.prod(inputs[0].shape)) * w[1] * w[2] * w[3]))

    def linear_hook(layer, inputs, output):
        calls.append(("linear", int(np.prod(output.shape)) * layer.weight.shape[0]))  # weight: [in, out]

    handles, seen = [], set()
    for layer in [model, *model.sublayers()]:
        if id(layer) in seen:  # a shared layer gets one hook, which then fires at each of its calls
            continue
        seen.add(id(layer))
        if isinstance(layer, nn.Conv2DTranspose):
            handles.append(layer.register_forward_post_hook(convt_hook))
        elif isinstance(layer, nn.Conv2D):
            handles.append(layer.register_forward_post_hook(conv_hook))
        elif isinstance(layer, nn.Linear):
            handles.append(layer.register_forward_post_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros(list(shape), dtype="float32"))
    finally:
        for h in handles:
            h.remove()
        if was_training:
            model.train()
    return calls


def _reference_shape(model, shape) -> tuple:
    """The smallest valid input (same N, C) whose area differs from `shape`'s, to tell constant calls apart."""
    n, c, h, w = shape
    multiple, min_size = size_rules(model)
    side = padded_size(min_size, multiple)
    if side * side == h * w:
        return (n, c, side + multiple, side)
    return (n, c, side, side)


def mac_count(model, shape, proxy: int = 1) -> MacCount:
    """MACs of `model` on an input of `shape` (N, C, H, W), counted at (H/proxy, W/proxy) and scaled exactly.

    Raises ConfigError when the shape or the proxy factor does not fit the network, and ProfileError when
    a layer's MACs neither scale with H*W nor stay constant (then the proxy would not be exact).
    """
    shape = parse_shape(shape)
    check_shape(model, shape)
    if isinstance(proxy, bool) or not isinstance(proxy, int) or proxy < 1:
        raise ConfigError(f"the proxy factor is an integer >= 1, got {proxy!r}")
    n, c, h, w = shape
    if proxy not in valid_proxies(model, shape, proxy):
        ok = valid_proxies(model, shape, 64)
        multiple, min_size = size_rules(model)
        raise ConfigError(f"proxy {proxy} does not fit {type(model).__name__} at {h}x{w}: H/{proxy} and W/{proxy} "
                          f"must be integers, multiples of {multiple} and at least {min_size} "
                          f"(valid factors: {', '.join(map(str, ok))})")
    small = (n, c, h // proxy, w // proxy)
    calls = _record_calls(model, small)
    ref_shape = _reference_shape(model, small)
    ref = _record_calls(model, ref_shape)
    if [k for k, _ in calls] != [k for k, _ in ref]:
        if proxy == 1:  # counted at the real shape: exact, only the constant part is unknown (left at 0)
            by_kind = {k: sum(m for kind, m in calls if kind == k) for k in KINDS}
            return MacCount(shape=shape, proxy=1, by_kind=by_kind, constant=0, calls=len(calls))
        raise ProfileError(f"{type(model).__name__}: the layer calls differ between {small} and {ref_shape}; "
                           f"its MACs cannot be derived from a proxy")
    area, ref_area = small[2] * small[3], ref_shape[2] * ref_shape[3]
    by_kind = {k: 0 for k in KINDS}
    constant = 0
    for i, ((kind, macs), (_, ref_macs)) in enumerate(zip(calls, ref)):
        if macs == ref_macs:  # independent of the size (after global pooling)
            by_kind[kind] += macs
            constant += macs
        elif macs * ref_area == ref_macs * area:  # proportional to H*W
            by_kind[kind] += macs * proxy * proxy
        elif proxy == 1:  # counted at the real shape: exact anyway
            by_kind[kind] += macs
        else:
            raise ProfileError(f"{type(model).__name__}: layer call {i} ({kind}) has {macs} MACs at {small} and "
                               f"{ref_macs} at {ref_shape}, neither constant nor proportional to H*W; count "
                               f"with proxy=1")
    return MacCount(shape=shape, proxy=proxy, by_kind=by_kind, constant=constant, calls=len(calls))


def count_macs(model, shape, proxy: int = 1) -> int:
    """Total MACs of one forward pass of `model` on N x C x H x W zeros (see the module docstring)."""
    return mac_count(model, shape, proxy).total


def model_profile(cfg_or_model, shape=None, proxy="auto", overrides: Sequence[str] | None = None) -> ModelProfile:
    """Parameters and MACs of a network: a config path/dict (built with `overrides`) or a built model.

    `shape` defaults to `default_shape` (the config's export.input_shape, else the class's seed shape);
    `proxy` is a factor or "auto" (the largest valid one, see `auto_proxy`).
    """
    from . import _paddle  # noqa: F401 - sets the environment paddle reads on import
    import paddle.nn as nn

    from .config import load_config
    from .models.build import build_model
    from .models import count_parameters

    cfg, source = None, ""
    if isinstance(cfg_or_model, nn.Layer):
        model = cfg_or_model
    else:
        cfg = load_config(cfg_or_model, overrides)
        source = cfg.source
        model = build_model(cfg)
    if shape is None:
        shape, origin = default_shape_and_origin(model, cfg)
    else:
        shape, origin = parse_shape(shape), "given"
    check_shape(model, shape)
    k = auto_proxy(model, shape) if proxy in (None, "auto") else proxy
    return ModelProfile(name=type(model).__name__, params=count_parameters(model), macs=mac_count(model, shape, k),
                        source=source, shape_origin=origin)
