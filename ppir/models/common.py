"""Building blocks shared by the networks.

Everything here is written so that one exported program runs on every backend ppir supports
(dygraph, Paddle Inference with oneDNN on and off, paddle2onnx + ONNX Runtime, accelerator compilers):

* LeakyReLU is written with `maximum`/`minimum`: Paddle 3.3's oneDNN segfaults on conv -> leaky_relu and
  paddle2onnx silently zeroes its slope.
* No `F.interpolate` at all: every interpolate op fails under oneDNN in Paddle 3.3, and paddle2onnx cannot
  convert `scale_factor`. Resampling uses exact equivalents instead (strided slice, fixed depthwise (transposed)
  convolutions, pixel_shuffle, average pooling), each equal to PyTorch's `F.interpolate` of the same mode.
* Constant kernels are made in `forward` rather than stored, so they never appear in a state dict.

Paddle's own CPU kernels (dygraph, and the static training programs of `train.engine: to_static`) have slow
spots of their own in Paddle 3.3. They are worked around only where those kernels run (`native_kernels`), so
exported programs, which are traced in eval mode, stay as they were:

* An elementwise op broadcasts fast only over trailing axes. A `[1, C, 1, 1]` bias or slope, or a
  `[N, 1, H, W]` map, costs 4-15x a same-shape op forward and 3-5x with the backward (measured on
  8x16x64x64; a `[N, C, 1, 1]` operand is fast). Every conv bias is such an add.
* `max` over an axis has a backward about 35x slower than `take_along_axis` at the argmax (same gradient).
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Mapping

import numpy as np
from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..errors import ConfigError
from ..sizes import padded_size  # noqa: F401 - re-exported: the networks' checks and the tools share it

# bilinear x2 (align_corners=False): the 3x3 kernels (over the replicate-padded input) of the four output
# phases, in pixel_shuffle's order (row parity * 2 + column parity). Even outputs take 1/4 of the previous
# and 3/4 of the same input pixel, odd ones 3/4 of the same and 1/4 of the next.
_EVEN, _ODD = np.array([0.25, 0.75, 0.0]), np.array([0.0, 0.75, 0.25])
_BILINEAR_PHASES = np.stack([np.outer(r, c) for r in (_EVEN, _ODD) for c in (_EVEN, _ODD)]).astype(np.float32)
_NEAREST_UP2 = np.ones((2, 2), dtype=np.float32)
# MIRNet's anti-aliased downsampling filter ([1,2,1] binomial, normalised).
BINOMIAL_3x3 = (np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0).astype(np.float32)


def native_kernels(training: bool) -> bool:
    """Whether this forward runs on Paddle's own CPU kernels: in dygraph, or in a static program traced in
    training mode (`train.engine: to_static`). False only for programs traced in eval mode: the exported
    ones, compiled for Paddle Inference, ONNX Runtime or VACC, which keep the export-safe forms."""
    return training or paddle.in_dynamic_mode()


def trailing_broadcast(t, like, training: bool):
    """`t`, expanded where Paddle's own kernels run (`native_kernels`) so that it broadcasts against `like`
    over trailing axes only, their fast case (see the module docstring); unchanged in an exported program,
    whose backends broadcast well and where an expand would only cost memory.

    A leading batch axis of 1 is expanded to N (cheap: `[1, C, 1, 1]` -> `[N, C, 1, 1]`); any other
    broadcast axis followed by a full one (`[N, 1, H, W]`) needs the full shape."""
    if not native_kernels(training) or t.shape == like.shape:
        return t
    shape, target = list(t.shape), list(like.shape)
    if len(shape) != len(target):
        return t
    differs = [a != b for a, b in zip(shape, target)]
    last = max((i for i, d in enumerate(differs) if not d), default=-1)  # the last axis that is not broadcast
    inner = [i for i, d in enumerate(differs) if d and i < last]  # broadcast axes before a full one
    if not inner:
        return t
    if inner == [0]:
        return t.expand([target[0], *shape[1:]])
    return t.expand(target)


class Conv2D(nn.Conv2D):
    """nn.Conv2D (same parameters and state-dict keys) whose bias add is fast on Paddle's own kernels
    (`trailing_broadcast`); in an exported program it is nn.Conv2D's own forward (conv2d + add, which Paddle
    Inference fuses)."""

    def forward(self, x):
        if self.bias is None or not native_kernels(self.training) or self._padding_mode != "zeros":
            return super().forward(x)
        # nn.Conv2D.forward's own call (Paddle 3.3.1), without the bias
        out = F.conv._conv_nd(x, self.weight, bias=None, stride=self._stride, padding=self._updated_padding,
                              padding_algorithm=self._padding_algorithm, dilation=self._dilation,
                              groups=self._groups, data_format=self._data_format, channel_dim=self._channel_dim,
                              op_type=self._op_type, use_cudnn=self._use_cudnn)
        bias = self.bias.reshape([1, -1, 1, 1] if self._data_format == "NCHW" else [1, 1, 1, -1])
        return out + trailing_broadcast(bias, out, self.training)


class Conv2DTranspose(nn.Conv2DTranspose):
    """nn.Conv2DTranspose with the same fast bias add as `Conv2D`."""

    def forward(self, x, output_size=None):
        if self.bias is None or not native_kernels(self.training) or output_size is not None:
            return super().forward(x, output_size)
        out = F.conv2d_transpose(x, self.weight, None, padding=self._padding, output_padding=self.output_padding,
                                 stride=self._stride, dilation=self._dilation, groups=self._groups,
                                 data_format=self._data_format)
        bias = self.bias.reshape([1, -1, 1, 1] if self._data_format == "NCHW" else [1, 1, 1, -1])
        return out + trailing_broadcast(bias, out, self.training)


def channel_max(x, training: bool):
    """max over axis 1, keepdim. Where a gradient will flow (training mode, or dygraph with a gradient) it is
    taken as `take_along_axis` at the argmax: the same values, a backward ~35x faster in Paddle 3.3 on CPU,
    and the gradient of PyTorch's `torch.max(x, 1)` that the official code uses (all of it to the first
    maximum; Paddle's max op splits it among ties). Elsewhere (dygraph inference, exported programs) it is
    the max op itself."""
    if native_kernels(training) and (training or not x.stop_gradient):
        return paddle.take_along_axis(x, paddle.argmax(x, axis=1, keepdim=True), axis=1)
    return paddle.max(x, axis=1, keepdim=True)


def conv2d(in_channels, out_channels, kernel_size, stride=1, bias=True, padding=None):
    """A Conv2D with 'same' padding (k // 2) unless told otherwise, and an optional bias."""
    if padding is None:
        padding = kernel_size // 2
    return Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                  bias_attr=None if bias else False)


def leaky_relu(x, slope: float = 0.2, training: bool = False):
    """LeakyReLU without the leaky_relu op in exported programs: max(x, s*x) for s <= 1, min(x, s*x) for s > 1
    (exact). Paddle's own kernels (`native_kernels`) run the op itself: the same values, and one backward
    kernel instead of two (the maximum's backward was ~9% of a HINet training step)."""
    if native_kernels(training):
        return F.leaky_relu(x, slope)
    return paddle.maximum(x, x * slope) if slope <= 1 else paddle.minimum(x, x * slope)


class LeakyReLU(nn.Layer):
    """nn.LeakyReLU's drop-in, built on `leaky_relu` above so it exports to every backend."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        return leaky_relu(x, self.negative_slope, self.training)


class PReLU(nn.PReLU):
    """nn.PReLU (same `_weight` parameter, init and state-dict key) computed as w * x + (1 - w) * relu(x).

    Equal to the prelu op up to one rounding (for x <= 0 it is exactly w * x), for any slope; Paddle's own
    kernels (`native_kernels`) run the prelu op itself (fewer kernels, faster training), exported programs
    this form. Paddle
    Inference's oneDNN prelu kernel runs about 20x slower than the plain one on CPU, and MIRNet applies PReLU
    after most of its convs; this form is three elementwise kernels (measured on MIRNet with oneDNN: ~9%
    faster end to end than relu(x) - w * relu(-x), which needs five) on every backend.
    """

    def forward(self, x):
        if native_kernels(self.training):  # the prelu op: one kernel forward and back (the form below: 4 and 5)
            return super().forward(x)
        w = self._weight
        if w.shape[0] != 1:  # one slope per channel
            w = w.reshape([1, -1, 1, 1] if self._data_format == "NCHW" else [1, 1, 1, -1])
        return x * w + F.relu(x) * (1.0 - w)


def _depthwise_kernel(x, kernel_2d: np.ndarray):
    """The fixed 2-D kernel repeated for each channel of x, shaped for a depthwise (transposed) conv."""
    channels = x.shape[1]
    k = paddle.to_tensor(kernel_2d[None, None], dtype=x.dtype)
    return paddle.expand(k, [channels, 1, kernel_2d.shape[0], kernel_2d.shape[1]])


def down_nearest2(x):
    """Nearest-neighbour x0.5, exactly as PyTorch's F.interpolate(scale_factor=0.5): top-left pixel of each 2x2."""
    return x[:, :, ::2, ::2]


def up_nearest2(x):
    """Nearest-neighbour x2 (each pixel repeated 2x2), as a depthwise transposed conv with a ones kernel."""
    return F.conv2d_transpose(x, _depthwise_kernel(x, _NEAREST_UP2), stride=2, groups=x.shape[1])


def down_bilinear2(x):
    """Bilinear x0.5 with align_corners=False: for even sizes that is exactly 2x2 average pooling."""
    return F.avg_pool2d(x, kernel_size=2, stride=2)


def up_bilinear2(x):
    """Bilinear x2 with align_corners=False (PyTorch's default), without an interpolate op.

    Output pixel 2i mixes input pixels i-1 and i with weights 1/4, 3/4 (2i+1: i and i+1, 3/4, 1/4), clamped at
    the border. So: replicate-pad by one pixel, one depthwise 3x3 convolution that makes the four output
    phases (row parity x column parity) of every channel, and pixel_shuffle to interleave them. A depthwise
    transposed convolution computes the same, but Paddle Inference runs that op with its slow plain kernel
    even with oneDNN on (9-14% of MIRNet's time there); this form is a oneDNN convolution.
    """
    channels = x.shape[1]
    padded = F.pad(x, [1, 1, 1, 1], mode="replicate")
    kernel = paddle.tile(paddle.to_tensor(_BILINEAR_PHASES[:, None], dtype=x.dtype), [channels, 1, 1, 1])
    return F.pixel_shuffle(F.conv2d(padded, kernel, groups=channels), 2)


def resample2(x, direction: str, mode: str):
    """x2 up or x0.5 down in the given mode ('nearest' or 'bilinear')."""
    table = {
        ("down", "nearest"): down_nearest2,
        ("up", "nearest"): up_nearest2,
        ("down", "bilinear"): down_bilinear2,
        ("up", "bilinear"): up_bilinear2,
    }
    return table[(direction, mode)](x)


def antialias_down2(x):
    """Blur-then-subsample x0.5 (MIRNet's Downsample): reflect-pad 1, depthwise binomial 3x3 at stride 2.

    For even H and W (all MIRNet ever feeds it: its size rules make every level even) the stride-2 windows
    never reach the bottom and right padding, so only the top row and left column are added (each the
    reflection of row / column 1), by concatenation: Paddle Inference's oneDNN pad3d in reflect mode was
    ~8% of MIRNet's time. Odd sizes give (H - 1) / 2 rows instead of (H + 1) / 2.
    """
    padded = paddle.concat([x[:, :, 1:2], x], axis=2)
    padded = paddle.concat([padded[:, :, :, 1:2], padded], axis=3)
    return F.conv2d(padded, _depthwise_kernel(x, BINOMIAL_3x3), stride=2, groups=x.shape[1])


def check_int(owner: str, name: str, value, minimum: int) -> int:
    """A constructor argument that must be an integer >= minimum (booleans refused), else a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{owner}: {name} must be >= {minimum}, got {value}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """What the tools need to know about a network beyond its forward pass, declared by the network itself.

    A network class states them as `FACTS = ModelFacts(...)` in its own file (subclasses inherit them); every
    tool reads them through `model_facts`, never through a table keyed by class names. A network that declares
    nothing gets these defaults. Size rules are not here: they often depend on constructor arguments (HINet's
    depth), so a network states them as `size_multiple` / `min_size` attributes, read by `size_rules`.
    """

    # How the official evaluation turns the float output into 8-bit images: "nearest", or "half_up" (clip,
    # +0.5/255, x255, truncate: torchvision's to_pil_image, MIMO-UNet's test code). Export writes it into
    # inference.yml; a config's `export.rounding` overrides it.
    rounding: str = "nearest"
    # The N x C x H x W the network is usually quoted at (model cards, MAC tables); tools/model_info profiles
    # at it. None: 1 x C x 256 x 256 rounded up to what the network accepts.
    seed_shape: tuple | None = None
    # What makes tiled output differ from the whole image's (e.g. "instance norm": statistics over the whole
    # image); "" when the output depends only on a neighbourhood, so tiling is exact up to the blend.
    image_wide: str = ""
    # Overlap between tiles (pixels) that export writes into inference.yml as the runners' default.
    tile_overlap: int = 32
    # Torch buffers of the official model that hold constants ppir builds in forward: name (the last part of
    # the state-dict key) -> function(torch shape) returning the expected value. The converter checks such a
    # buffer against it and drops it.
    constant_torch_buffers: Mapping = dataclasses.field(default_factory=dict)


def model_facts(model) -> ModelFacts:
    """The facts a network (instance or class) declares in its `FACTS` attribute, or the defaults."""
    facts = getattr(model, "FACTS", None)
    if facts is None:
        return ModelFacts()
    if not isinstance(facts, ModelFacts):
        name = model.__name__ if isinstance(model, type) else type(model).__name__
        raise TypeError(f"{name}.FACTS must be a ppir.models.common.ModelFacts, got {type(facts).__name__}")
    return facts




def input_channels(model) -> int:
    """The channels a ppir network takes (its `in_channels` / `in_chn`; 3 when it states neither)."""
    for attr in ("in_channels", "in_chn"):
        value = getattr(model, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 3


def size_rules(model) -> tuple[int, int]:
    """(multiple, min_size) that H and W of a network's input must satisfy: its `size_multiple` and
    `min_size` attributes (class attributes, or properties when they depend on constructor arguments);
    (1, 1) for a network that states neither."""
    multiple = int(getattr(model, "size_multiple", 1) or 1)
    min_size = int(getattr(model, "min_size", 0) or 0)
    return multiple, max(min_size, multiple)


def shape_problem(model, shape) -> str | None:
    """Why the network cannot take an N x C x H x W input of `shape` (one line), or None when it can."""
    _, c, h, w = shape
    name = type(model).__name__
    if c != input_channels(model):
        return f"{name} takes {input_channels(model)} input channel(s), the shape has C={c}"
    multiple, min_size = size_rules(model)
    for what, side in (("H", h), ("W", w)):
        if side % multiple or side < min_size:
            good = padded_size(side, multiple, min_size)
            return (f"{what}={side} does not fit {name}, which needs multiples of {multiple} and at least "
                    f"{min_size} (try {good})")
    return None


def check_input(x, name: str, channels: int, multiple: int, min_size: int) -> None:
    """In dygraph, raise a clear ValueError unless x is N x channels x H x W with H and W multiples of
    `multiple` and at least `min_size` (upstream fails on such inputs too, but deep inside, or silently).
    Skipped under to_static, where H and W are symbolic."""
    if not paddle.in_dynamic_mode():
        return
    shape = list(x.shape)
    if len(shape) != 4 or shape[1] != channels:
        raise ValueError(f"{name} expects an N x {channels} x H x W tensor, got shape {shape}")
    h, w = shape[2], shape[3]
    if h % multiple or w % multiple or h < min_size or w < min_size:
        raise ValueError(f"{name} needs H and W that are multiples of {multiple} and at least {min_size}, "
                         f"got {h}x{w}; pad the input first (tools/predict.py and the runners do)")


def count_parameters(model: nn.Layer) -> int:
    """Number of distinct trainable numbers (shared parameters counted once, like PyTorch's parameters())."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += int(np.prod(p.shape))
    return total
