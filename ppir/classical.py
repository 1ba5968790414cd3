"""Classical restoration methods stronger than a plain filter, for ppir.baselines' rows.

* BM3D (Dabov et al. 2007) through the optional `bm3d` package, blind: the noise level is estimated from the
  degraded image (`skimage.restoration.estimate_sigma`), as a user without the clean image has to. A gray image
  (R = G = B) is denoised as one gray channel, a colour one with BM3D's colour variant.
* Poisson-Gaussian noise: the generalised Anscombe transform (variance 1 for every brightness) -> BM3D ->
  the closed-form approximation of its exact unbiased inverse (Makitalo & Foi 2011), with the noise model
  var(y) = a*y + b fitted blind on the image's own flat blocks.
* Motion blur: unsharp masking (blind), and Wiener or Richardson-Lucy deconvolution given the TRUE kernel (an
  oracle no user has: it bounds what classical deconvolution can do on these images).

Every method maps an 8-bit RGB image to an 8-bit RGB image.
"""
from __future__ import annotations

import importlib.util

import cv2
import numpy as np

from .data.image_io import to_uint8
from .data.synthetic import is_gray

BM3D_MISSING = ("BM3D rows left out: the `bm3d` package is not installed (pip install bm3d; its licence allows "
                "non-commercial use only, so ppir does not require it)")


def bm3d_available() -> bool:
    return importlib.util.find_spec("bm3d") is not None


def _float(img_u8: np.ndarray) -> np.ndarray:
    return img_u8.astype(np.float64) / 255.0


def _bm3d_any(x: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D of HxWx3 x (any range) with noise std sigma in x's units; gray images as one channel."""
    import bm3d

    sigma = max(float(sigma), 1e-6)
    if is_gray(x):
        return np.repeat(np.atleast_3d(bm3d.bm3d(x[..., 0], sigma)), 3, axis=2)
    return bm3d.bm3d_rgb(x, sigma)


def estimated_sigma(x: np.ndarray) -> float:
    """Gaussian noise std of a [0, 1] image, estimated from the image alone (wavelet MAD, scikit-image)."""
    from skimage.restoration import estimate_sigma

    if is_gray(x):
        return float(estimate_sigma(x[..., 0]))
    return float(estimate_sigma(x, channel_axis=-1, average_sigmas=True))


def bm3d_blind(img_u8: np.ndarray, _value=None) -> np.ndarray:
    x = _float(img_u8)
    return to_uint8(np.clip(_bm3d_any(x, estimated_sigma(x)), 0.0, 1.0))


# For pure Gaussian noise, the mean of the lowest quarter of 8x8-block robust variances (1.4826 MAD)^2 is 0.658
# of the true variance (Monte Carlo, 200000 blocks of 64 samples): fit_poisson_gaussian divides it out.
LOW_QUARTER_BIAS = 0.658


def fit_poisson_gaussian(x: np.ndarray, block: int = 8) -> tuple[float, float]:
    """(a, b) of the noise model var(y) = a*y + b for a [0, 1] image, from the image alone: each block's
    brightness and its noise variance (robust, from 2x2 diagonal differences that cancel smooth content), the
    blocks binned by brightness, the flattest quarter of each bin kept, then a least-squares line."""
    chans = [x[..., 0]] if is_gray(x) else [x[..., c] for c in range(x.shape[2])]
    means, variances = [], []
    for ch in chans:
        h, w = (ch.shape[0] // 2) * 2, (ch.shape[1] // 2) * 2
        c = ch[:h, :w]
        diff = (c[0::2, 0::2] - c[1::2, 0::2] - c[0::2, 1::2] + c[1::2, 1::2]) / 2.0  # variance sigma^2
        mean = (c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2]) / 4.0
        bh, bw = diff.shape[0] // block, diff.shape[1] // block
        if bh == 0 or bw == 0:
            continue
        d = diff[:bh * block, :bw * block].reshape(bh, block, bw, block).transpose(0, 2, 1, 3).reshape(-1, block ** 2)
        m = mean[:bh * block, :bw * block].reshape(bh, block, bw, block).transpose(0, 2, 1, 3).reshape(-1, block ** 2)
        mad = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1)
        means.append(m.mean(axis=1))
        variances.append((1.4826 * mad) ** 2)
    if not means:
        return 0.0, float(estimated_sigma(x)) ** 2
    mu, var = np.concatenate(means), np.concatenate(variances)
    keep = (mu > 0.03) & (mu < 0.97)  # clipping at 0 and 1 bends the model
    mu, var = (mu[keep], var[keep]) if keep.sum() >= 8 else (mu, var)
    edges = np.quantile(mu, np.linspace(0, 1, 11))
    px, py = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (mu >= lo) & (mu <= hi)
        if sel.sum() < 4:
            continue
        v = var[sel]
        flat = v <= np.quantile(v, 0.25)  # texture only adds variance: the flattest blocks are the noise
        px.append(mu[sel][flat].mean())
        py.append(v[flat].mean() / LOW_QUARTER_BIAS)
    if len(px) < 2:
        return 0.0, float(np.median(var))
    a, b = np.polyfit(px, py, 1)
    a = max(float(a), 1e-6)
    b = max(float(b), 0.0)
    return a, b


def bm3d_anscombe_blind(img_u8: np.ndarray, _value=None) -> np.ndarray:
    """Poisson-Gaussian noise: generalised Anscombe -> BM3D (sigma 1) -> approximate exact unbiased inverse."""
    x = _float(img_u8)
    a, b = fit_poisson_gaussian(x)
    if a < 1e-5:  # no signal-dependent part found: plain Gaussian noise of variance b
        return to_uint8(np.clip(_bm3d_any(x, np.sqrt(b)), 0.0, 1.0))
    z = x / a                      # photon-like units: Poisson part has variance z
    s2 = b / a ** 2                # read-noise variance in the same units
    f = 2.0 * np.sqrt(np.maximum(z + 3.0 / 8.0 + s2, 0.0))
    d = np.maximum(_bm3d_any(f, 1.0), 0.8)  # the inverse's series is for D well above 0
    r = np.sqrt(1.5)
    inv = 0.25 * d ** 2 + 0.25 * r / d - 11.0 / 8.0 / d ** 2 + 0.625 * r / d ** 3 - 0.125 - s2
    return to_uint8(np.clip(np.maximum(inv, 0.0) * a, 0.0, 1.0))


def unsharp(img_u8: np.ndarray, value) -> np.ndarray:
    """Unsharp masking: x + amount * (x - Gaussian(x, sigma)); value = (sigma, amount)."""
    sigma, amount = value
    x = img_u8.astype(np.float32)
    blur = cv2.GaussianBlur(x, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT_101)
    return np.clip(np.rint(x + float(amount) * (x - blur)), 0, 255).astype(np.uint8)


def _padded(x: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, int]:
    """Reflect-pad by the kernel size so circular (FFT) deconvolution does not wrap the borders."""
    pad = kernel.shape[0]
    return np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="reflect"), pad


def wiener_oracle(img_u8: np.ndarray, balance: float, kernel: np.ndarray) -> np.ndarray:
    """Wiener deconvolution with the true kernel (skimage.restoration.wiener), per channel."""
    from skimage.restoration import wiener

    x, pad = _padded(_float(img_u8), kernel)
    out = np.stack([wiener(x[..., c], kernel, float(balance), clip=False) for c in range(3)], axis=2)
    return to_uint8(np.clip(out[pad:-pad, pad:-pad], 0.0, 1.0))


def richardson_lucy_oracle(img_u8: np.ndarray, iterations: int, kernel: np.ndarray) -> np.ndarray:
    """Richardson-Lucy deconvolution with the true kernel (skimage.restoration.richardson_lucy), per channel;
    clipped once at the end (clipping every iteration costs about 1.5 dB here)."""
    from skimage.restoration import richardson_lucy

    x, pad = _padded(_float(img_u8), kernel)
    out = np.stack([richardson_lucy(x[..., c], kernel, num_iter=int(iterations), clip=False)
                    for c in range(3)], axis=2)
    return to_uint8(np.clip(out[pad:-pad, pad:-pad], 0.0, 1.0))
