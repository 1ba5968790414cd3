"""MIRNet (Zamir et al., "Learning Enriched Features for Real Image Restoration and Enhancement", ECCV 2020).

Reference: the official PyTorch code, swz30/MIRNet @ 6934e830cac66b6c774d74dc6321d4f43fc8a928
(`networks/MIRNet_model.py`, `utils/antialias.py`). This is an independent PaddlePaddle implementation; its
layer tree is laid out so that every key of an official state dict has the same name here (see `MIRNet`).

Architecture (C = n_feat, 64 upstream; every convolution is bias-free with the default `bias=False`):

* `conv_in` (3 -> C), then `n_RRG` recursive residual groups, then `conv_out` (C -> 3), plus the input image.
* RRG: `n_MSRB` multi-scale residual blocks and a conv3x3, with a skip over the whole group.
* MSRB: a mesh of `height` resolution levels (C, 2C, 4C, ... channels, each x0.5 in size) by `width`
  columns. Column 0 runs a dual attention unit (DAU) per level, each level fed by the one above through a
  residual downsampler. Every later column first fuses all levels, resampled to each level, with that
  level's selective kernel feature fusion (SKFF), then applies the *same* DAU again (upstream repeats one DAU
  object across the columns). Finally the levels are brought back to full size, fused by SKFF number 0
  (used a second time), passed through a conv3x3 and added to the block input.
* DAU: conv3x3-PReLU-conv3x3, then spatial attention (sigmoid of a 5x5 conv over the channel max and mean)
  and channel attention (squeeze-excite, C -> C//8 -> C), concatenated and merged by a conv1x1, plus the
  input. One PReLU module serves every DAU of a model (upstream shares it through a default argument).
* Resampling: residual down = [conv1x1, PReLU, conv3x3, PReLU, anti-aliased blur x0.5, conv1x1 to 2C] plus
  [blur x0.5, conv1x1 to 2C]; residual up = [conv1x1, PReLU, ConvTranspose k3 s2, PReLU, conv1x1 to C/2]
  plus [bilinear x2, conv1x1 to C/2]. Larger factors chain these.

Export notes: the anti-aliasing filter (a fixed [1,2,1] x [1,2,1] / 16 binomial, stored by upstream as a
`filt` buffer) is made in `forward` (`common.antialias_down2`), and the bilinear x2 is
`common.up_bilinear2`; neither uses `F.interpolate`, so one export runs on every backend.
"""
from __future__ import annotations

import numpy as np
from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..errors import ConfigError
from ..registry import MODELS
from .common import (BINOMIAL_3x3, Conv2DTranspose, ModelFacts, PReLU, antialias_down2, channel_max, check_input,
                     check_int, conv2d, trailing_broadcast, up_bilinear2)


def expected_blur_filter(shape) -> np.ndarray:
    """The value upstream stores in every `...filt` buffer of that shape: the binomial 3x3 per channel.

    Given a shape other than [C, 1, 3, 3] it returns an empty array, so a shape check against it fails.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or shape[1:] != (1, 3, 3):
        return np.zeros((0,), dtype=np.float32)
    return np.broadcast_to(BINOMIAL_3x3[None, None], shape).copy()


# ---------------------------------------------------------------------------------------------------------
# Resampling


class AntialiasDownsample(nn.Layer):
    """Blur x0.5 (reflect-pad 1, depthwise binomial 3x3, stride 2). No parameters and no stored filter."""

    def forward(self, x):
        return antialias_down2(x)


class BilinearUp2(nn.Layer):
    """Bilinear x2 with align_corners=False, without an interpolate op. No parameters."""

    def forward(self, x):
        return up_bilinear2(x)


class ResidualDownSample(nn.Layer):
    """x0.5 in size, x2 in channels: `top(x) + bot(x)` (Sequential indices as upstream)."""

    def __init__(self, channels: int):
        super().__init__()
        self.top = nn.Sequential(
            conv2d(channels, channels, 1, bias=False),
            PReLU(),
            conv2d(channels, channels, 3, bias=False),
            PReLU(),
            AntialiasDownsample(),
            conv2d(channels, channels * 2, 1, bias=False),
        )
        self.bot = nn.Sequential(
            AntialiasDownsample(),
            conv2d(channels, channels * 2, 1, bias=False),
        )

    def forward(self, x):
        return self.top(x) + self.bot(x)


class ResidualUpSample(nn.Layer):
    """x2 in size, x0.5 in channels: `top(x) + bot(x)` (Sequential indices as upstream)."""

    def __init__(self, channels: int):
        super().__init__()
        self.top = nn.Sequential(
            conv2d(channels, channels, 1, bias=False),
            PReLU(),
            Conv2DTranspose(channels, channels, 3, stride=2, padding=1, output_padding=1, bias_attr=False),
            PReLU(),
            conv2d(channels, channels // 2, 1, bias=False),
        )
        self.bot = nn.Sequential(
            BilinearUp2(),
            conv2d(channels, channels // 2, 1, bias=False),
        )

    def forward(self, x):
        # bot = conv1x1(bilinear x2(x)), computed as bilinear x2(conv1x1(x)): both are linear, one mixes
        # channels per pixel and the other pixels per channel, so they commute; upsampling C/2 channels
        # after the conv instead of C before it does 1/4 of the conv work and 1/2 of the resampling.
        upsample, conv = self.bot[0], self.bot[1]
        return self.top(x) + upsample(conv(x))


def _log2_int(scale: int) -> int:
    return int(scale).bit_length() - 1


class DownSample(nn.Layer):
    """`scale` (a power of 2) in size via log2(scale) ResidualDownSample steps, doubling channels each step."""

    def __init__(self, channels: int, scale: int):
        super().__init__()
        steps = []
        for _ in range(_log2_int(scale)):
            steps.append(ResidualDownSample(channels))
            channels *= 2
        self.body = nn.Sequential(*steps)

    def forward(self, x):
        return self.body(x)


class UpSample(nn.Layer):
    """`scale` (a power of 2) in size via log2(scale) ResidualUpSample steps, halving channels each step."""

    def __init__(self, channels: int, scale: int):
        super().__init__()
        steps = []
        for _ in range(_log2_int(scale)):
            steps.append(ResidualUpSample(channels))
            channels //= 2
        self.body = nn.Sequential(*steps)

    def forward(self, x):
        return self.body(x)


# ---------------------------------------------------------------------------------------------------------
# Attention and fusion


class SKFF(nn.Layer):
    """Selective kernel feature fusion of `height` same-shaped branches.

    Channel weights come from the pooled branch sum (conv1x1 to d = max(C//8, 4), PReLU, one conv1x1 back to
    C per branch) and are normalised by a softmax across the branches.
    """

    def __init__(self, channels: int, height: int, reduction: int = 8):
        super().__init__()
        self.channels = channels
        self.height = height
        d = max(int(channels / reduction), 4)
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv_du = nn.Sequential(conv2d(channels, d, 1, bias=False), PReLU())
        self.fcs = nn.LayerList([conv2d(d, channels, 1, bias=False) for _ in range(height)])

    def forward(self, branches):
        # Branch by branch, never as one stacked N x height x C x H x W tensor: oneDNN runs the 5-D broadcast
        # product of the stacked form slowly (42% of MIRNet's time on Paddle Inference; 2.4x faster so).
        # No Python `for` statements here: to_static rewrites them, and with two or more MSRBs the exported
        # program then mixed up shapes between calls (Paddle 3.3.1); comprehensions and add_n stay as written.
        summary = self.conv_du(self.avg_pool(paddle.add_n(branches)))
        weights = F.softmax(paddle.stack([fc(summary) for fc in self.fcs], axis=0), axis=0)  # over the branches
        return paddle.add_n([b * w for b, w in zip(branches, paddle.unbind(weights, axis=0))])


class BasicConv(nn.Layer):
    """A bias-free conv, kept inside a layer named `conv` (upstream's BasicConv without BN and ReLU)."""

    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = conv2d(in_channels, out_channels, kernel_size, bias=False)

    def forward(self, x):
        return self.conv(x)


class SpatialAttention(nn.Layer):
    """x * sigmoid(conv5x5([max over channels, mean over channels]))."""

    def __init__(self, kernel_size: int = 5):
        super().__init__()
        self.spatial = BasicConv(2, 1, kernel_size)

    def forward(self, x):
        # The channel mean as sum / C: oneDNN's reduce_mean refuses a mean over axis 1 ("ReduceMeanCheckIfOneDNN
        # Support" on stdout) and Paddle Inference falls back to the plain kernel there; sum runs in oneDNN.
        mean = paddle.sum(x, axis=1, keepdim=True) * (1.0 / x.shape[1])
        pooled = paddle.concat([channel_max(x, self.training), mean], axis=1)
        return x * trailing_broadcast(F.sigmoid(self.spatial(pooled)), x, self.training)


class ChannelAttention(nn.Layer):
    """x * sigmoid(conv1x1(ReLU(conv1x1(global average pool(x))))), C -> C//reduction -> C."""

    def __init__(self, channels: int, reduction: int = 8, bias: bool = False):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv_du = nn.Sequential(
            conv2d(channels, channels // reduction, 1, bias=bias),
            nn.ReLU(),
            conv2d(channels // reduction, channels, 1, bias=bias),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class DAU(nn.Layer):
    """Dual attention unit: x + conv1x1([SA(r), CA(r)]) with r = conv3x3(act(conv3x3(x))).

    `act` is the PReLU shared by every DAU of one MIRNet.
    """

    def __init__(self, channels: int, act: nn.Layer, kernel_size: int = 3, reduction: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            conv2d(channels, channels, kernel_size, bias=False),
            act,
            conv2d(channels, channels, kernel_size, bias=False),
        )
        self.SA = SpatialAttention()
        self.CA = ChannelAttention(channels, reduction, bias=False)
        self.conv1x1 = conv2d(channels * 2, channels, 1, bias=False)

    def forward(self, x):
        res = self.body(x)
        return self.conv1x1(paddle.concat([self.SA(res), self.CA(res)], axis=1)) + x


# ---------------------------------------------------------------------------------------------------------
# Multi-scale residual block, residual group, network


class MSRB(nn.Layer):
    """Multi-scale residual block: `height` levels x `width` columns of DAUs with SKFF exchange between levels.

    `blocks[j]` lists the same DAU object `width` times (shared weights, as upstream). `down` / `up` are keyed
    '<source channels>_<factor>', `last_up` by the level index as a string.
    """

    def __init__(self, n_feat: int, height: int, width: int, stride: int, bias: bool, act: nn.Layer):
        super().__init__()
        self.n_feat, self.height, self.width = n_feat, height, width
        self.level_channels = [n_feat * stride ** i for i in range(height)]

        self.blocks = nn.LayerList()
        for ch in self.level_channels:
            dau = DAU(ch, act)
            self.blocks.append(nn.LayerList([dau] * width))

        self.last_up = nn.LayerDict()
        for i in range(1, height):
            self.last_up[str(i)] = UpSample(self.level_channels[i], 2 ** i)

        # Same insertion order as upstream: coarsest factor first.
        scales = [2 ** i for i in range(1, height)][::-1]
        self.down = nn.LayerDict()
        for i, ch in enumerate(self.level_channels):
            for scale in scales[i:]:
                self.down[f"{ch}_{scale}"] = DownSample(ch, scale)
        self.up = nn.LayerDict()
        for i, ch in enumerate(self.level_channels[::-1]):
            for scale in scales[i:]:
                self.up[f"{ch}_{scale}"] = UpSample(ch, scale)

        self.conv_out = conv2d(n_feat, n_feat, 3, bias=bias)
        self.selective_kernel = nn.LayerList([SKFF(ch, height) for ch in self.level_channels])

    def _resample(self, x, src: int, dst: int):
        """Bring a level-`src` tensor to level `dst` (keys use the source's channel count)."""
        if src == dst:
            return x
        key = f"{self.level_channels[src]}_{2 ** abs(src - dst)}"
        return self.up[key](x) if src > dst else self.down[key](x)

    def forward(self, x):
        levels = []
        h = x
        for j in range(self.height):
            if j > 0:
                h = self.down[f"{self.level_channels[j - 1]}_2"](h)
            h = self.blocks[j][0](h)
            levels.append(h)

        for i in range(1, self.width):
            fused = [
                self.selective_kernel[j]([self._resample(levels[k], k, j) for k in range(self.height)])
                for j in range(self.height)
            ]
            levels = [self.blocks[j][i](fused[j]) for j in range(self.height)]

        full = [levels[0]] + [self.last_up[str(k)](levels[k]) for k in range(1, self.height)]
        out = self.selective_kernel[0](full)
        return self.conv_out(out) + x


class RRG(nn.Layer):
    """Recursive residual group: x + Sequential(n_MSRB x MSRB, conv3x3)(x)."""

    def __init__(self, n_feat, n_MSRB, height, width, stride, bias, act):
        super().__init__()
        layers = [MSRB(n_feat, height, width, stride, bias, act) for _ in range(n_MSRB)]
        layers.append(conv2d(n_feat, n_feat, 3, bias=False))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x) + x


def _check_int(name, value, minimum):
    return check_int("MIRNet", name, value, minimum)


@MODELS.register
class MIRNet(nn.Layer):
    """MIRNet for real image denoising / enhancement (official reference: swz30/MIRNet @ 6934e830).

    Args (official names and defaults):
        in_channels, out_channels: image channels (3). The output adds the input, so they must be equal.
        n_feat: channels of the full-resolution level (64); levels have n_feat * 2**i. At least 8, because the
            channel attention has n_feat // 8 hidden channels.
        kernel_size: kernel of `conv_in` / `conv_out` (3); odd, so that they keep the size.
        stride: channel multiplier between levels; only 2 is supported (the resamplers double / halve).
        n_RRG: residual groups (3). n_MSRB: multi-scale blocks per group (2).
        height: resolution levels per MSRB (3). width: DAU columns per MSRB (2).
        bias: bias of `conv_in`, `conv_out` and each MSRB's `conv_out` (False); every other conv has none,
            exactly as upstream.

    Input: N x C x H x W with H and W multiples of `size_multiple` (2**(height-1)). Output: one tensor,
    `conv_out(body(conv_in(x))) + x`, not clamped (official scripts clamp to [0, 1] afterwards).

    Weight sharing as upstream, but per instance: one PReLU for all DAUs of this model, each MSRB's DAU
    repeated over its columns, `selective_kernel[0]` used twice. With the defaults there are 31,787,419
    distinct parameters. Official state dict keys load by name, except that PReLU `weight` is `_weight`
    here and the constant `...filt` buffers (see `FACTS.constant_torch_buffers`) are not stored.
    """

    FACTS = ModelFacts(
        seed_shape=(1, 3, 256, 256),  # the model-zoo cards' and the MAC tables' size (SIDD crops)
        image_wide="global-pooling attention",  # channel attention pools over the whole input
        # Torch buffers that this port recomputes in forward: attribute name -> (shape -> expected value).
        constant_torch_buffers={"filt": expected_blur_filter},
    )

    def __init__(self, in_channels: int = 3, out_channels: int = 3, n_feat: int = 64, kernel_size: int = 3,
                 stride: int = 2, n_RRG: int = 3, n_MSRB: int = 2, height: int = 3, width: int = 2,
                 bias: bool = False):
        super().__init__()
        in_channels = _check_int("in_channels", in_channels, 1)
        out_channels = _check_int("out_channels", out_channels, 1)
        if out_channels != in_channels:
            raise ConfigError(f"MIRNet: out_channels must equal in_channels (the input is added to the output), "
                              f"got in_channels={in_channels}, out_channels={out_channels}")
        n_feat = _check_int("n_feat", n_feat, 8)
        kernel_size = _check_int("kernel_size", kernel_size, 1)
        if kernel_size % 2 == 0:
            raise ConfigError(f"MIRNet: kernel_size must be odd (an even kernel changes the image size), "
                              f"got {kernel_size}")
        stride = _check_int("stride", stride, 1)
        if stride != 2:
            raise ConfigError(f"MIRNet: only stride=2 is supported (levels double their channels), got {stride}")
        n_RRG = _check_int("n_RRG", n_RRG, 1)
        n_MSRB = _check_int("n_MSRB", n_MSRB, 1)
        height = _check_int("height", height, 1)
        width = _check_int("width", width, 1)
        if not isinstance(bias, (bool, np.bool_)):
            raise ConfigError(f"MIRNet: bias must be true or false, got {bias!r}")
        bias = bool(bias)

        self.in_channels, self.out_channels, self.n_feat = in_channels, out_channels, n_feat
        self.kernel_size, self.stride, self.n_RRG, self.n_MSRB = kernel_size, stride, n_RRG, n_MSRB
        self.height, self.width, self.bias = height, width, bias

        # The one PReLU every DAU of this model shares. It is not an attribute of MIRNet itself, so it only
        # appears in the state dict under the DAUs' `body.1` names, like upstream.
        dau_act = PReLU()
        pad = (kernel_size - 1) // 2
        self.conv_in = conv2d(in_channels, n_feat, kernel_size, bias=bias, padding=pad)
        self.body = nn.Sequential(*[RRG(n_feat, n_MSRB, height, width, stride, bias, dau_act)
                                    for _ in range(n_RRG)])
        self.conv_out = conv2d(n_feat, out_channels, kernel_size, bias=bias, padding=pad)

    @property
    def size_multiple(self) -> int:
        """H and W of the input must be multiples of this (height - 1 levels of x0.5)."""
        return 2 ** (self.height - 1)

    @property
    def min_size(self) -> int:
        return self.size_multiple

    def forward(self, x):
        check_input(x, "MIRNet", self.in_channels, self.size_multiple, self.min_size)
        return self.conv_out(self.body(self.conv_in(x))) + x
