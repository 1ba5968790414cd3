"""Pre- and post-processing shared by every way of running a network on an image.

Networks need H and W to be multiples of a number (HINet 16, MIMO-UNet and MIRNet 4) and sometimes a
minimum size; instead of resizing, the image is reflect-padded up to that and the output cropped back,
so the result has the input's exact size.

The steps, as in the seed deploy docs (and driven by inference.yml in the runners):

* read with OpenCV, BGR -> RGB, /255 (gray -> 3 channels, alpha dropped, 16-bit /65535: `ppir.data.image_io`);
* HWC -> 1 x C x H x W float32 (`to_nchw`), reflect-padded (`pad_to_multiple`);
* network (whole image, or tiles: `ppir.infer.tiling`);
* crop back, clip to [0, 1] (`postprocess`), x255 to uint8 with the model's rounding (`to_uint8`), RGB -> BGR
  on writing.

Its own code only needs numpy, so backends that do not use Paddle can share it. The round-up to the size
rules is `ppir.sizes.padded_size` (re-exported here): one formula for padding, tiling and checks.
"""
from __future__ import annotations

import numpy as np

from ..uint8 import ROUNDINGS, to_uint8  # noqa: F401 - the one 8-bit conversion, re-exported for the runners
from ..sizes import padded_size


def pad_to_multiple(chw: np.ndarray, multiple: int, min_size: int = 0) -> np.ndarray:
    """Reflect-pad a CxHxW (or NxCxHxW) array at the bottom/right up to the network's size constraints."""
    h, w = chw.shape[-2:]
    return pad_to_size(chw, padded_size(h, multiple, min_size), padded_size(w, multiple, min_size))


def pad_to_size(chw: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad the last two axes at the bottom/right up to at least height x width (never crops).

    numpy reflects repeatedly when the padding is larger than the image; a 1-pixel side is edge-padded."""
    h, w = chw.shape[-2:]
    ph, pw = max(0, height - h), max(0, width - w)
    if ph == 0 and pw == 0:
        return chw
    widths = [(0, 0)] * (chw.ndim - 2) + [(0, ph), (0, pw)]
    mode = "reflect" if min(h, w) > 1 else "edge"  # reflection needs at least two pixels
    return np.pad(chw, widths, mode=mode)


def to_network_channels(img_rgb: np.ndarray, channels: int = 3) -> np.ndarray:
    """HxWx3 RGB -> HxWx`channels`: unchanged for 3, ITU-R BT.601 luma for a 1-channel network."""
    if channels == img_rgb.shape[2]:
        return img_rgb
    if channels == 1:
        return (img_rgb @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None].astype(np.float32)
    raise ValueError(f"cannot feed a {img_rgb.shape[2]}-channel image to a {channels}-channel network")


def to_nchw(img: np.ndarray) -> np.ndarray:
    """HxWxC float image -> 1xCxHxW float32 (no padding)."""
    return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)[None]


def postprocess(nchw: np.ndarray, height: int, width: int) -> np.ndarray:
    """1xCxH'xW' network output -> HxWx3 RGB float32 in [0, 1], cropped back to the input size."""
    out = np.asarray(nchw)[0, :, :height, :width]
    if out.shape[0] == 1:
        out = np.repeat(out, 3, axis=0)
    return np.clip(out.transpose(1, 2, 0), 0.0, 1.0).astype(np.float32)


def final_output(outputs):
    """The restored image among a network's outputs: HINet's stage 2, MIMO-UNet's full scale (the last)."""
    return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs
