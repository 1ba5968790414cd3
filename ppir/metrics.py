"""Image-quality metrics (numpy), with the options that reproduce each paper's protocol.

Metrics are registered in `METRICS` and called as ``metric(restored, gt) -> float`` on H x W x 3 RGB images
(float in [0, 1], or uint8, which is divided by 255). Every metric works in this order:

1. **clip** both images to [0, 1]. ppir always clamps (as the official test scripts clamp outside the model): HINet's SIDD
   evaluation scores the raw output and picks the PSNR peak from the data (1 or 255), which inflates blocks
   whose output exceeds 1; ppir uses a fixed data range of 1 instead.
2. with `round_uint8`, **round** both to the 256 uint8 levels (``round(x * 255) / 255``, half to even like
   numpy/torch ``round``): HINet's GoPro/REDS/Rain13k protocol, whose ``tensor2img`` clamps, rounds and casts.
3. **crop** `crop_border` pixels from every edge.
4. with `test_y_channel`, convert to **BT.601 Y** in [16/255, 235/255], unrounded
   (``(16 + 65.481 R + 128.553 G + 24.966 B) / 255``, HINet's ``bgr2ycbcr(y_only=True)``).
5. compute in float64 with data range 1.

PSNR is ``10 log10(1 / MSE)`` over all pixels and channels (inf for identical images, as skimage and
BasicSR). Datasets average the per-image values (`MetricSet`).

SSIM (Gaussian window 11, sigma 1.5, K1 = 0.01, K2 = 0.03, population covariances) comes in two modes:

* ``'2d'``: per-channel 2-D SSIM, averaged over the **valid** region (the 5-pixel border where the window
  leaves the image is not scored) and then over channels. This is, to float precision, BasicSR's ``_ssim``
  (cv2 filter, ``[5:-5, 5:-5]``), Wang et al.'s ``ssim_index.m`` (``filter2 'valid'``, without the automatic
  downsampling of the later ``ssim.m``) and ``skimage.metrics.structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1)``; the tests check the last one.
  Needs H and W >= 11.
* ``'3d'``: HINet's ``_ssim_3d``, a copy of MATLAB ``ssim()`` on an H x W x 3 array: one 11 x 11 x 11
  Gaussian over (H, W, channel) with **replicate** padding on all three axes, averaged over the **full** map.
  Used for HINet's and MPRNet's SIDD/GoPro/REDS paper numbers. On noisy images it is markedly higher than
  '2d' (§0.1). HINet computes it in float32 on the GPU; ppir in float64 (differences ~1e-7).

With `test_y_channel` the image has one channel, so ``'3d'`` becomes the 2-D Gaussian SSIM with replicate
borders and a full-map mean, which is exactly HINet's ``_ssim_cly`` (its Rain13k protocol); ``'2d'`` on Y is
BasicSR's original ``calculate_ssim(test_y_channel=True)``.

Shape problems in a call (images of different sizes, too small, wrong channel count) raise ValueError; bad
constructor arguments raise ConfigError.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from scipy.ndimage import correlate1d

from .errors import ConfigError
from .registry import METRICS
from .uint8 import uint8_levels

__all__ = ["PSNR", "SSIM", "MetricSet", "build_metrics", "rgb_to_y", "to_float_image", "to_hwc_numpy",
           "prepare_pair", "psnr", "ssim_2d", "ssim_3d", "gaussian_kernel"]

# BT.601 for RGB in [0, 1] -> Y in [0, 255] minus 16 (MATLAB rgb2ycbcr, BasicSR bgr2ycbcr with BGR order).
Y_COEFFS = np.array([65.481, 128.553, 24.966], dtype=np.float64)
Y_OFFSET = 16.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


# --------------------------------------------------------------------------------------------------- helpers
def to_float_image(img, what: str = "image") -> np.ndarray:
    """A float64 H x W x C array: uint8 is divided by 255, floats are kept, H x W becomes H x W x 1."""
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float64) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    else:
        raise ValueError(f"{what} must be float in [0, 1] or uint8, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"{what} must be H x W x C (or H x W), got shape {arr.shape}")
    return arr


def to_hwc_numpy(x) -> np.ndarray:
    """A paddle Tensor (or array) shaped 1 x C x H x W or C x H x W -> float64 H x W x C numpy array."""
    arr = x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else np.asarray(x)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValueError(f"to_hwc_numpy takes one image, got a batch of shape {arr.shape}")
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(f"to_hwc_numpy expects C x H x W or 1 x C x H x W, got shape {arr.shape}")
    return np.ascontiguousarray(arr.transpose(1, 2, 0)).astype(np.float64)


def rgb_to_y(img) -> np.ndarray:
    """BT.601 luma of an RGB image in [0, 1] (H x W x 3 -> H x W), in [16/255, 235/255], not rounded.

    White -> 235/255, black -> 16/255 (HINet/BasicSR ``bgr2ycbcr(y_only=True)`` on the RGB-ordered image).
    """
    arr = to_float_image(img, "rgb_to_y input")
    if arr.shape[2] != 3:
        raise ValueError(f"rgb_to_y needs 3 channels (RGB), got shape {arr.shape}")
    return (arr @ Y_COEFFS + Y_OFFSET) / 255.0


def prepare_pair(restored, gt, crop_border: int = 0, test_y_channel: bool = False,
                 round_uint8: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-4 of the module docstring: clip, optional uint8 rounding, crop, optional Y. Returns two float64
    H x W x C arrays (C = 1 after Y)."""
    a = to_float_image(restored, "restored image")
    b = to_float_image(gt, "ground truth")
    if a.shape != b.shape:
        raise ValueError(f"restored image and ground truth differ in shape: {a.shape} vs {b.shape}")
    a = np.clip(a, 0.0, 1.0)
    b = np.clip(b, 0.0, 1.0)
    if round_uint8:
        a, b = uint8_levels(a), uint8_levels(b)
    if crop_border:
        h, w = a.shape[:2]
        if 2 * crop_border >= min(h, w):
            raise ValueError(f"crop_border={crop_border} leaves nothing of a {h}x{w} image")
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel:
        a, b = rgb_to_y(a)[:, :, None], rgb_to_y(b)[:, :, None]
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """``10 log10(data_range^2 / MSE)`` over every element; inf when the images are equal."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / mse)


def gaussian_kernel(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian, as ``cv2.getGaussianKernel(size, sigma)`` (and scipy's truncated kernel)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    k = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return k / k.sum()


def _ssim_map(a, b, blur, data_range: float = 1.0) -> np.ndarray:
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a = blur(a * a) - mu_aa
    var_b = blur(b * b) - mu_bb
    cov = blur(a * b) - mu_ab
    return ((2 * mu_ab + c1) * (2 * cov + c2)) / ((mu_aa + mu_bb + c1) * (var_a + var_b + c2))


def ssim_2d(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Per-channel Gaussian SSIM over the valid region, mean over channels (the '2d' mode). H x W x C inputs."""
    h, w = a.shape[:2]
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(f"2-D SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {h}x{w}")
    k = gaussian_kernel()
    r = SSIM_WINDOW // 2

    def blur(x):  # border mode is irrelevant: the border strip is cropped below
        return correlate1d(correlate1d(x, k, axis=0, mode="reflect"), k, axis=1, mode="reflect")

    smap = _ssim_map(a, b, blur, data_range)[r:h - r, r:w - r]
    return float(smap.mean())


def ssim_3d(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """HINet's ``_ssim_3d`` / MATLAB ``ssim`` on a volume: 11x11x11 Gaussian over (H, W, C) with replicate
    padding, full-map mean (the '3d' mode). For C = 1 this is HINet's ``_ssim_cly``."""
    k = gaussian_kernel()

    def blur(x):
        for axis in range(3):
            x = correlate1d(x, k, axis=axis, mode="nearest")  # 'nearest' = replicate padding
        return x

    return float(_ssim_map(a, b, blur, data_range).mean())


def _check_crop(crop_border, cls: str) -> int:
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ConfigError(f"{cls}: crop_border must be an integer >= 0, got {crop_border!r}")
    return crop_border


def _check_bool(value, key: str, cls: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{cls}: {key} must be true or false, got {value!r}")
    return value


def _check_name(name, default: str, cls: str) -> str:
    if name is None:
        return default
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{cls}: name must be a non-empty string, got {name!r}")
    return name


# ---------------------------------------------------------------------------------------------------- metrics
class _Metric:
    """Shared options; subclasses define `_score(a, b)` on the prepared float64 arrays."""

    name: str = ""
    higher_is_better = True

    def __init__(self, crop_border: int = 0, test_y_channel: bool = False, round_uint8: bool = False):
        cls = type(self).__name__
        self.crop_border = _check_crop(crop_border, cls)
        self.test_y_channel = _check_bool(test_y_channel, "test_y_channel", cls)
        self.round_uint8 = _check_bool(round_uint8, "round_uint8", cls)

    def __call__(self, restored, gt) -> float:
        a, b = prepare_pair(restored, gt, self.crop_border, self.test_y_channel, self.round_uint8)
        return self._score(a, b)

    def _score(self, a, b) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "name")
        return f"{type(self).__name__}({opts}) as {self.name!r}"


@METRICS.register
class PSNR(_Metric):
    """PSNR in dB with a fixed peak of 1 on the clipped images. Name 'psnr', or 'psnr_y' on the Y channel."""

    def __init__(self, crop_border: int = 0, test_y_channel: bool = False, round_uint8: bool = False,
                 name: str | None = None):
        super().__init__(crop_border, test_y_channel, round_uint8)
        self.name = _check_name(name, "psnr_y" if test_y_channel else "psnr", "PSNR")

    def _score(self, a, b) -> float:
        return psnr(a, b)


@METRICS.register
class SSIM(_Metric):
    """SSIM, '2d' (per-channel, valid region, = skimage/BasicSR) or '3d' (HINet/MATLAB volume SSIM, replicate
    borders). Names: 'ssim', 'ssim_y', 'ssim3d', 'ssim3d_y' ('ssim3d_y' is HINet's Rain13k `_ssim_cly`)."""

    MODES = ("2d", "3d")

    def __init__(self, crop_border: int = 0, test_y_channel: bool = False, round_uint8: bool = False,
                 mode: str = "2d", name: str | None = None):
        super().__init__(crop_border, test_y_channel, round_uint8)
        if mode not in self.MODES:
            raise ConfigError(f"SSIM: mode must be one of {', '.join(map(repr, self.MODES))}, got {mode!r}")
        self.mode = mode
        default = ("ssim" if mode == "2d" else "ssim3d") + ("_y" if test_y_channel else "")
        self.name = _check_name(name, default, "SSIM")

    def _score(self, a, b) -> float:
        return ssim_2d(a, b) if self.mode == "2d" else ssim_3d(a, b)


# -------------------------------------------------------------------------------------------------- MetricSet
def build_metrics(entries: Iterable, source: str = "") -> list:
    """Metric objects from a config's `metrics:` list of ``{type: ..., **options}`` mappings (or objects);
    `source` (the config file) is named in errors."""
    return [entry if isinstance(entry, _Metric) else METRICS.build(entry, f"metrics.{i}", source)
            for i, entry in enumerate(entries)]


class MetricSet:
    """Several metrics over a dataset: ``update(restored, gt)`` per image, ``summary()`` for the means.

    ``MetricSet([PSNR(), SSIM(mode='3d')])`` or ``MetricSet.from_config(cfg['metrics'])``. Names must be unique
    (give one an explicit `name` to keep two variants apart). The mean is the plain per-image mean, as every
    repo reports; an identical pair scores PSNR = inf and makes the PSNR mean inf (as upstream).
    """

    def __init__(self, metrics: Iterable, source: str = ""):
        self.metrics = build_metrics(metrics, source)
        names = [m.name for m in self.metrics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"metrics: duplicate name(s) {', '.join(dupes)}; set `name:` on one of them")
        self.reset()

    @classmethod
    def from_config(cls, entries) -> "MetricSet":
        return cls(entries or [])

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def reset(self) -> None:
        self._sums = {n: 0.0 for n in self.names}
        self.count = 0
        self.per_image: list[dict] = []

    def __call__(self, restored, gt) -> dict[str, float]:
        """Every metric for one pair, without accumulating."""
        return {m.name: m(restored, gt) for m in self.metrics}

    def update(self, restored, gt, key: str | None = None) -> dict[str, float]:
        """Score one pair, add it to the running means and return its scores (kept in `per_image` with `key`)."""
        scores = self(restored, gt)
        for n, v in scores.items():
            self._sums[n] += v
        self.count += 1
        self.per_image.append({"key": key if key is not None else str(self.count - 1), **scores})
        return scores

    def summary(self) -> dict[str, float]:
        """Mean of each metric over the pairs seen so far (NaN before the first update)."""
        if not self.count:
            return {n: math.nan for n in self.names}
        return {n: s / self.count for n, s in self._sums.items()}
