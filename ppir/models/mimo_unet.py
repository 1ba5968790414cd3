"""MIMO-UNet and MIMO-UNet+ (Cho et al., "Rethinking Coarse-to-Fine Approach in Single Image Deblurring", ICCV 2021).

Reference: the official PyTorch code, chosj95/MIMO-UNet @ 5c580135ed1c03344ac9c741267324ff90b5f209
(`models/MIMOUNet.py`, `models/layers.py`). This is an independent PaddlePaddle implementation; its layer
tree is laid out so that every key of an official state dict has the same name here (see `MIMOUNet`).

Architecture (C = base_channel, 32 upstream):

* Multi-input: the image `x`, its nearest x0.5 copy `x_2` and x0.25 copy `x_4`. The shallow convolutional
  modules SCM2 (2C channels) and SCM1 (4C) turn `x_2` and `x_4` into features.
* Encoder: three levels at C, 2C, 4C channels, each `num_res` residual blocks (conv3x3-ReLU-conv3x3 plus skip).
  Levels 2 and 3 start with a stride-2 conv3x3 whose output is fused with the SCM features by a FAM
  (`a + conv3x3(a * b)`).
* Asymmetric feature fusion (AFF): the three encoder outputs, resampled to one level and concatenated
  (7C channels), go through conv1x1-ReLU-conv3x3 to give the skip connection of decoder levels 1 and 2.
* Decoder: `num_res` residual blocks per level; ConvTranspose (k4 s2 p1) + ReLU goes up one level, a
  conv1x1 + ReLU merges it with the AFF skip.
* Multi-output: a conv3x3 image head at every level, added to `x_4`, `x_2` and `x`. The forward returns the
  list `[H/4, H/2, H]` (unclamped); official evaluation uses the last one, clamped to [0, 1].

Variants: `MIMOUNet` (num_res=8, 6,807,171 parameters) and `MIMOUNetPlus` (num_res=20, 16,107,651
parameters; also applies Dropout2D(0.1) to both AFF outputs, active in training only). At equal `num_res`
both have the same state dict and give identical eval outputs.

Resampling never uses `F.interpolate` (see `common.py`): `resize_mode="nearest"` is the official behaviour
(x0.5 keeps the top-left pixel of each 2x2 block, x2 repeats each pixel 2x2), bit-exact with upstream.
`resize_mode="bilinear"` (align_corners=False) is an export-oriented variant that is *not* upstream;
official weights were trained with nearest.
"""
from __future__ import annotations

from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
import paddle
import paddle.nn as nn

from ..errors import ConfigError
from ..registry import MODELS
from .common import Conv2DTranspose, ModelFacts, check_input, check_int, conv2d, resample2

RESIZE_MODES = ("nearest", "bilinear")


class BasicConv(nn.Layer):
    """A conv ('same' padding, bias) or a x2 transposed conv (k4 s2 p1, bias), optionally followed by ReLU.

    The layers sit in a Sequential called `main`, so the conv's parameters are `main.0.weight/bias`.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, relu=True, transpose=False):
        super().__init__()
        if transpose:
            conv = Conv2DTranspose(in_channels, out_channels, kernel_size, stride=stride,
                                      padding=kernel_size // 2 - 1)
        else:
            conv = conv2d(in_channels, out_channels, kernel_size, stride=stride)
        layers = [conv, nn.ReLU()] if relu else [conv]
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x)


class ResBlock(nn.Layer):
    """x + conv3x3(ReLU(conv3x3(x))), with no activation after the sum."""

    def __init__(self, channels):
        super().__init__()
        self.main = nn.Sequential(
            BasicConv(channels, channels, 3, relu=True),
            BasicConv(channels, channels, 3, relu=False),
        )

    def forward(self, x):
        return x + self.main(x)


class ResStack(nn.Layer):
    """`num_res` ResBlocks in a row (upstream's EBlock / DBlock); identity when num_res is 0."""

    def __init__(self, channels, num_res):
        super().__init__()
        self.layers = nn.Sequential(*[ResBlock(channels) for _ in range(num_res)])

    def forward(self, x):
        return self.layers(x)


class SCM(nn.Layer):
    """Shallow convolutional module: image (3 ch) -> `channels` features, keeping the image as 3 of them."""

    def __init__(self, channels):
        super().__init__()
        quarter, half = channels // 4, channels // 2
        self.main = nn.Sequential(
            BasicConv(3, quarter, 3, relu=True),
            BasicConv(quarter, half, 1, relu=True),
            BasicConv(half, half, 3, relu=True),
            BasicConv(half, channels - 3, 1, relu=True),
        )
        self.conv = BasicConv(channels, channels, 1, relu=False)

    def forward(self, x):
        return self.conv(paddle.concat([x, self.main(x)], axis=1))


class FAM(nn.Layer):
    """Feature attention module: a + conv3x3(a * b)."""

    def __init__(self, channels):
        super().__init__()
        self.merge = BasicConv(channels, channels, 3, relu=False)

    def forward(self, a, b):
        return a + self.merge(a * b)


class AFF(nn.Layer):
    """Asymmetric feature fusion: conv3x3(ReLU(conv1x1(concat(a, b, c))))."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Sequential(
            BasicConv(in_channels, out_channels, 1, relu=True),
            BasicConv(out_channels, out_channels, 3, relu=False),
        )

    def forward(self, a, b, c):
        return self.conv(paddle.concat([a, b, c], axis=1))


def _check_int(name, value, minimum):
    return check_int("MIMO-UNet", name, value, minimum)


@MODELS.register
class MIMOUNet(nn.Layer):
    """MIMO-UNet: multi-input multi-output U-Net for single-image deblurring.

    Args:
        num_res: residual blocks per encoder/decoder level (8 upstream; 0 or more).
        base_channel: channels of the first level, C; the levels have C, 2C, 4C (hard-coded 32 upstream).
            Must be >= 2 so that every SCM conv has at least one channel (SCM2 uses C//2 and 2C-3).
        resize_mode: 'nearest' (official) or 'bilinear' (align_corners=False; not upstream).

    Input: N x 3 x H x W with H and W multiples of 4 (`size_multiple`). Output: list of three images,
    [N x 3 x H/4 x W/4, N x 3 x H/2 x W/2, N x 3 x H x W], not clamped.

    Sublayers carry upstream's names (`Encoder`, `Decoder`, `feat_extract`, `Convs`, `ConvsOut`, `AFFs`,
    `FAM1/2`, `SCM1/2`, each conv inside a `main` Sequential), so an official state dict loads by name:
    Conv2d and ConvTranspose2d weights keep their PyTorch layout.
    """

    FACTS = ModelFacts(
        # The official test code clamps, adds 0.5/255 and truncates (torchvision's to_pil_image).
        rounding="half_up",
        seed_shape=(1, 3, 360, 640),  # half of GoPro's 720x1280, as the model cards quote it
    )

    def __init__(self, num_res: int = 8, base_channel: int = 32, resize_mode: str = "nearest"):
        super().__init__()
        _check_int("num_res", num_res, 0)
        _check_int("base_channel", base_channel, 2)
        if resize_mode not in RESIZE_MODES:
            raise ConfigError(f"resize_mode must be one of {', '.join(RESIZE_MODES)}, got {resize_mode!r}")
        self.num_res = num_res
        self.base_channel = base_channel
        self.resize_mode = resize_mode
        c = base_channel

        self.Encoder = nn.LayerList([ResStack(c, num_res), ResStack(2 * c, num_res), ResStack(4 * c, num_res)])
        self.feat_extract = nn.LayerList([
            BasicConv(3, c, 3, stride=1, relu=True),
            BasicConv(c, 2 * c, 3, stride=2, relu=True),
            BasicConv(2 * c, 4 * c, 3, stride=2, relu=True),
            BasicConv(4 * c, 2 * c, 4, stride=2, relu=True, transpose=True),
            BasicConv(2 * c, c, 4, stride=2, relu=True, transpose=True),
            BasicConv(c, 3, 3, stride=1, relu=False),
        ])
        self.Decoder = nn.LayerList([ResStack(4 * c, num_res), ResStack(2 * c, num_res), ResStack(c, num_res)])
        self.Convs = nn.LayerList([
            BasicConv(4 * c, 2 * c, 1, relu=True),
            BasicConv(2 * c, c, 1, relu=True),
        ])
        self.ConvsOut = nn.LayerList([
            BasicConv(4 * c, 3, 3, relu=False),
            BasicConv(2 * c, 3, 3, relu=False),
        ])
        self.AFFs = nn.LayerList([AFF(7 * c, c), AFF(7 * c, 2 * c)])
        self.FAM1 = FAM(4 * c)
        self.SCM1 = SCM(4 * c)
        self.FAM2 = FAM(2 * c)
        self.SCM2 = SCM(2 * c)

    @property
    def size_multiple(self) -> int:
        """H and W of the input must be multiples of this (two x0.5 levels)."""
        return 4

    def _down(self, x):
        return resample2(x, "down", self.resize_mode)

    def _up(self, x):
        return resample2(x, "up", self.resize_mode)

    def _fuse_dropout(self, res1, res2):
        """Hook for MIMOUNetPlus's dropout on the AFF outputs; identity here."""
        return res1, res2

    @property
    def min_size(self) -> int:
        return self.size_multiple

    def forward(self, x):
        check_input(x, type(self).__name__, 3, self.size_multiple, self.min_size)
        x_2 = self._down(x)
        x_4 = self._down(x_2)
        z2 = self.SCM2(x_2)
        z4 = self.SCM1(x_4)

        res1 = self.Encoder[0](self.feat_extract[0](x))
        z = self.FAM2(self.feat_extract[1](res1), z2)
        res2 = self.Encoder[1](z)
        z = self.FAM1(self.feat_extract[2](res2), z4)
        z = self.Encoder[2](z)

        # Asymmetric feature fusion: every encoder level, resampled to levels 1 and 2.
        z12 = self._down(res1)
        z21 = self._up(res2)
        z42 = self._up(z)
        z41 = self._up(z42)
        res2 = self.AFFs[1](z12, res2, z42)
        res1 = self.AFFs[0](res1, z21, z41)
        res1, res2 = self._fuse_dropout(res1, res2)

        z = self.Decoder[0](z)
        out_4 = self.ConvsOut[0](z) + x_4
        z = self.feat_extract[3](z)

        z = self.Convs[0](paddle.concat([z, res2], axis=1))
        z = self.Decoder[1](z)
        out_2 = self.ConvsOut[1](z) + x_2
        z = self.feat_extract[4](z)

        z = self.Convs[1](paddle.concat([z, res1], axis=1))
        z = self.Decoder[2](z)
        out_1 = self.feat_extract[5](z) + x
        return [out_4, out_2, out_1]


@MODELS.register
class MIMOUNetPlus(MIMOUNet):
    """MIMO-UNet+: MIMO-UNet with 20 residual blocks per level and Dropout2D(0.1) on both AFF outputs.

    Same arguments, input rule and outputs as `MIMOUNet`; the dropouts have no parameters, so the state dict
    is the same as MIMOUNet's at equal `num_res`, and in eval mode so are the outputs.
    """

    def __init__(self, num_res: int = 20, base_channel: int = 32, resize_mode: str = "nearest"):
        super().__init__(num_res=num_res, base_channel=base_channel, resize_mode=resize_mode)
        self.drop1 = nn.Dropout2D(0.1)
        self.drop2 = nn.Dropout2D(0.1)

    def _fuse_dropout(self, res1, res2):
        return self.drop1(res1), self.drop2(res2)
