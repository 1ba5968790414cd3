"""HINet: Half Instance Normalization Network (Chen et al., CVPR Workshops 2021), in PaddlePaddle.

Port of the official PyTorch model `basicsr/models/archs/hinet_arch.py` from megvii-model/HINet at commit
4e7231543090e6280d03fac22b3bb6869a25dfad. Sublayer names and nesting follow the official module tree, so every key
of an official state dict has a Paddle parameter of the same name and shape. The single exception is
InstanceNorm's weight, which Paddle calls `scale`: `<block>.norm.weight` -> `<block>.norm.scale`.
"""
from __future__ import annotations

import math
import numbers

from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..errors import ConfigError
from ..registry import MODELS
from .common import Conv2DTranspose, ModelFacts, check_input, check_int, conv2d, leaky_relu

# Upstream's SAM hard-codes a 3-channel image (conv2: C -> 3, conv3: 3 -> C).
_SAM_IMAGE_CHANNELS = 3


class SAM(nn.Layer):
    """Supervised attention module between the stages.

    Returns `(features, image)`: `image = conv2(x) + x_img` is the stage-1 restoration, and the features are
    `conv1(x) * sigmoid(conv3(image)) + x`. All three convolutions are 3x3 with bias.
    """

    def __init__(self, n_feat: int, kernel_size: int = 3):
        super().__init__()
        self.conv1 = conv2d(n_feat, n_feat, kernel_size)
        self.conv2 = conv2d(n_feat, _SAM_IMAGE_CHANNELS, kernel_size)
        self.conv3 = conv2d(_SAM_IMAGE_CHANNELS, n_feat, kernel_size)

    def forward(self, x, x_img):
        image = self.conv2(x) + x_img
        gate = F.sigmoid(self.conv3(image))
        return self.conv1(x) * gate + x, image


class UNetConvBlock(nn.Layer):
    """Residual conv block: conv3x3 -> [HIN] -> lrelu -> conv3x3 -> lrelu, plus a 1x1 identity branch.

    * HIN (`use_hin`): the first half of the channels goes through an affine InstanceNorm (per-instance
      statistics, also in eval), the second half passes unchanged.
    * CSFF (`use_csff`, stage-2 encoder only): features of the same level from the stage-1 encoder (`enc`) and
      decoder (`dec`) are added through their own 3x3 convs.
    * With `downsample` the block returns `(downsampled, full)`, the downsampling being a 4x4 stride-2 conv
      without bias; otherwise it returns the full-resolution tensor.
    """

    def __init__(self, in_size: int, out_size: int, downsample: bool, relu_slope: float,
                 use_csff: bool = False, use_hin: bool = False):
        super().__init__()
        self.relu_slope = float(relu_slope)
        self.use_csff = bool(use_csff and downsample)
        self.use_hin = bool(use_hin)

        self.identity = conv2d(in_size, out_size, 1)
        self.conv_1 = conv2d(in_size, out_size, 3)
        self.conv_2 = conv2d(out_size, out_size, 3)
        if self.use_csff:
            self.csff_enc = conv2d(out_size, out_size, 3)
            self.csff_dec = conv2d(out_size, out_size, 3)
        if self.use_hin:
            self.norm = nn.InstanceNorm2D(out_size // 2, epsilon=1e-5)
        self.downsample = conv2d(out_size, out_size, 4, stride=2, bias=False, padding=1) if downsample else None

    def forward(self, x, enc=None, dec=None):
        out = self.conv_1(x)
        if self.use_hin:
            normed, kept = paddle.chunk(out, 2, axis=1)
            out = paddle.concat([self.norm(normed), kept], axis=1)
        out = leaky_relu(out, self.relu_slope, self.training)
        out = leaky_relu(self.conv_2(out), self.relu_slope, self.training)
        out = out + self.identity(x)
        if enc is not None and dec is not None:
            if not self.use_csff:
                raise RuntimeError("this block has no cross-stage fusion convolutions")
            out = out + self.csff_enc(enc) + self.csff_dec(dec)
        if self.downsample is not None:
            return self.downsample(out), out
        return out


class UNetUpBlock(nn.Layer):
    """2x2 stride-2 transposed conv (with bias), concat with the skip tensor, then a plain UNetConvBlock."""

    def __init__(self, in_size: int, out_size: int, relu_slope: float):
        super().__init__()
        self.up = Conv2DTranspose(in_size, out_size, kernel_size=2, stride=2)
        self.conv_block = UNetConvBlock(in_size, out_size, False, relu_slope)

    def forward(self, x, bridge):
        return self.conv_block(paddle.concat([self.up(x), bridge], axis=1))


def _check_int(name, value, minimum):
    return check_int("HINet", name, value, minimum)


@MODELS.register
class HINet(nn.Layer):
    """HINet, the two-stage half-instance-normalisation U-Net (official port).

    Architecture (channels at encoder level i are ``wf * 2**i``, i = 0 .. depth-1):

    * Stage 1: ``conv_01`` (3x3) -> ``down_path_1`` (``depth`` UNetConvBlocks; all but the last downsample with a
      4x4 stride-2 conv) -> ``up_path_1`` (``depth-1`` UNetUpBlocks, each fed ``skip_conv_1[i]`` of the matching
      encoder tensor) -> ``sam12`` (supervised attention), which yields the stage-1 image and attention features.
    * Stage 2: ``cat12`` (1x1) over ``[conv_02(x), sam features]`` -> ``down_path_2`` (same encoder, whose
      downsampling blocks also add ``csff_enc``/``csff_dec`` of the stage-1 encoder/decoder features at that
      level) -> ``up_path_2`` with ``skip_conv_2`` -> ``last`` (3x3) + input.
    * Encoder block j of both stages uses Half Instance Normalisation iff
      ``hin_position_left <= j <= hin_position_right``; decoder blocks never do. LeakyReLU slope ``relu_slope``.

    ``forward(x)`` returns ``[out_1, out_2]``: the stage-1 image (``sam12.conv2(feat) + x``) and the stage-2 image
    (``last(feat) + x``), both at full resolution and not clamped. Training uses both; inference uses ``out_2``.

    Variants of the official configs (``depth=5``, ``relu_slope=0.2``, ``in_chn=3`` everywhere):

    * "0.5x" = ``wf=32`` (22,176,518 parameters), "1x" = ``wf=64`` (88,669,702 parameters);
    * HIN at levels 0..4 for SIDD and Rain13k, at levels 3..4 for GoPro and REDS (1x: 88,668,806 parameters).

    Input size: H and W must be multiples of ``size_multiple`` (``2**(depth-1)``) and at least ``min_size``
    (the deepest level that uses InstanceNorm needs at least 2x2 pixels; 32 for the official configs).

    Argument rules beyond upstream's (which accepts anything and fails later, or silently ignores it):
    ``depth >= 1``; ``in_chn`` is 3 or 1 (the SAM is hard-wired to 3 image channels; with 1 the stage-1
    image broadcasts to 3 channels, as upstream); ``wf`` even when level 0 uses HIN (HIN halves the
    channels); ``0 <= hin_position_left <= min(hin_position_right, depth-1)``. A ``hin_position_right``
    beyond ``depth-1`` means "through the deepest level", as upstream.

    Reference: megvii-model/HINet @ 4e7231543090e6280d03fac22b3bb6869a25dfad, basicsr/models/archs/hinet_arch.py.
    """

    FACTS = ModelFacts(
        seed_shape=(1, 3, 256, 256),  # the model-zoo cards' and the MAC tables' size (SIDD crops)
        image_wide="instance norm",   # statistics over the whole input: a tile sees only its own
    )

    def __init__(self, in_chn: int = 3, wf: int = 64, depth: int = 5, relu_slope: float = 0.2,
                 hin_position_left: int = 0, hin_position_right: int = 4):
        super().__init__()
        in_chn = _check_int("in_chn", in_chn, 1)
        if in_chn not in (1, _SAM_IMAGE_CHANNELS):
            raise ConfigError(
                f"HINet: in_chn must be 3 (or 1, broadcast like upstream), got {in_chn}; the official SAM "
                f"is hard-wired to 3 image channels")
        wf = _check_int("wf", wf, 1)
        depth = _check_int("depth", depth, 1)
        if isinstance(relu_slope, bool) or not isinstance(relu_slope, numbers.Real) \
                or not math.isfinite(float(relu_slope)):
            raise ConfigError(f"HINet: relu_slope must be a finite number, got {relu_slope!r}")
        left = _check_int("hin_position_left", hin_position_left, 0)
        right = _check_int("hin_position_right", hin_position_right, 0)
        if left > right:
            raise ConfigError(
                f"HINet: hin_position_left ({left}) must be <= hin_position_right ({right})")
        if left > depth - 1:
            raise ConfigError(
                f"HINet: hin_position_left ({left}) must be <= depth-1 ({depth - 1}); "
                f"no encoder level would use HIN")
        if left == 0 and wf % 2:
            raise ConfigError(
                f"HINet: wf must be even when encoder level 0 uses HIN (it halves the channels), got {wf}")

        self.in_chn = in_chn
        self.wf = wf
        self.depth = depth
        self.relu_slope = float(relu_slope)
        self.hin_position_left = left
        self.hin_position_right = right
        self.hin_levels = tuple(range(left, min(right, depth - 1) + 1))

        self.down_path_1 = nn.LayerList()
        self.down_path_2 = nn.LayerList()
        self.conv_01 = conv2d(in_chn, wf, 3)
        self.conv_02 = conv2d(in_chn, wf, 3)

        prev = wf
        for i in range(depth):
            use_hin = i in self.hin_levels
            downsample = i + 1 < depth
            width = wf * 2 ** i
            self.down_path_1.append(UNetConvBlock(prev, width, downsample, self.relu_slope, use_hin=use_hin))
            self.down_path_2.append(
                UNetConvBlock(prev, width, downsample, self.relu_slope, use_csff=downsample, use_hin=use_hin))
            prev = width

        self.up_path_1 = nn.LayerList()
        self.up_path_2 = nn.LayerList()
        self.skip_conv_1 = nn.LayerList()
        self.skip_conv_2 = nn.LayerList()
        for i in reversed(range(depth - 1)):
            width = wf * 2 ** i
            self.up_path_1.append(UNetUpBlock(prev, width, self.relu_slope))
            self.up_path_2.append(UNetUpBlock(prev, width, self.relu_slope))
            self.skip_conv_1.append(conv2d(width, width, 3))
            self.skip_conv_2.append(conv2d(width, width, 3))
            prev = width

        self.sam12 = SAM(prev)
        self.cat12 = conv2d(prev * 2, prev, 1)
        self.last = conv2d(prev, in_chn, 3)

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (one halving per downsampling level)."""
        return 2 ** (self.depth - 1)

    @property
    def min_size(self) -> int:
        """Smallest H or W that works: the deepest InstanceNorm level needs at least 2x2 pixels."""
        need = 2 ** (self.hin_levels[-1] + 1)
        return max(self.size_multiple, need)

    def forward(self, x):
        # PyTorch refuses a 1x1 InstanceNorm level while Paddle silently returns its bias: check up front.
        check_input(x, f"HINet(depth={self.depth})", self.in_chn, self.size_multiple, self.min_size)
        image = x

        # stage 1
        feat = self.conv_01(image)
        encs, decs = [], []
        for block in self.down_path_1:
            if block.downsample is not None:
                feat, full = block(feat)
                encs.append(full)
            else:
                feat = block(feat)
        for i, up in enumerate(self.up_path_1):
            feat = up(feat, self.skip_conv_1[i](encs[-i - 1]))
            decs.append(feat)
        sam_feat, out_1 = self.sam12(feat, image)

        # stage 2
        feat = self.cat12(paddle.concat([self.conv_02(image), sam_feat], axis=1))
        blocks = []
        for i, block in enumerate(self.down_path_2):
            if block.downsample is not None:
                feat, full = block(feat, encs[i], decs[-i - 1])
                blocks.append(full)
            else:
                feat = block(feat)
        for i, up in enumerate(self.up_path_2):
            feat = up(feat, self.skip_conv_2[i](blocks[-i - 1]))
        out_2 = self.last(feat) + image
        return [out_1, out_2]
