"""Training losses of the three papers, registered in `LOSSES` so a config's `loss: {type: ...}` picks one.

Every loss is a `paddle.nn.Layer` called as ``loss(pred, gt) -> scalar Tensor`` where `pred` is the network's
raw output and `gt` is the N x 3 x H x W ground truth:

* a single Tensor (MIRNet), or
* a list of full-size Tensors (HINet's ``[stage1, stage2]``): L1Loss, PSNRLoss and CharbonnierLoss sum the loss
  over them, as HINet's ``optimize_parameters`` does (``l_pix += cri_pix(pred, gt)`` for every output), or
* MIMO-UNet's ``[H/4, H/2, H]`` list, which only MultiScaleFFTLoss accepts.

What each one copies (upstream files read: megvii-model/HINet@4e72315 basicsr/models/losses/losses.py and
basicsr/models/image_restoration_model.py; chosj95/MIMO-UNet@5c58013 train.py; swz30/MIRNet@6934e83 losses.py
and train_denoising.py):

* L1Loss: ``loss_weight * mean|pred - gt|`` (HINet's SIDD configs).
* PSNRLoss: ``loss_weight * 10/ln(10) * mean_over_batch(log(mean_per_image((pred - gt)^2) + 1e-8))``; with
  `to_y` (upstream ``toY``) both images are first turned into BT.601 Y in [16/255, 235/255]. Upstream's class
  default weight is 1.0, but every HINet config that uses it (GoPro, REDS, Rain13k) sets 0.5, so 0.5 is ppir's
  default.
* CharbonnierLoss: ``loss_weight * mean(sqrt((pred - gt)^2 + eps^2))``; MIRNet's training loop clamps the
  output to [0, 1] before the loss (``restored = torch.clamp(restored, 0, 1)``), so `clamp_pred` defaults to
  True. The clamp passes gradients for 0 <= x <= 1 (bounds included), as torch.clamp does.
* MultiScaleFFTLoss: MIMO-UNet's ``loss_content + 0.1 * loss_fft``, see the class.

A list of the wrong length or of outputs whose size does not fit the ground truth raises ConfigError (the
loss in the config does not fit the model), with a message naming the loss and the shapes.
"""
from __future__ import annotations

import math

from . import _paddle  # noqa: F401 - sets the environment paddle reads on import
import paddle
import paddle.nn as nn

from .errors import ConfigError
from .models.common import down_bilinear2
from .registry import LOSSES

__all__ = ["L1Loss", "PSNRLoss", "CharbonnierLoss", "MultiScaleFFTLoss", "build_loss",
           "down_bilinear_quarter", "rgb_to_y_tensor"]

# BT.601 luma for RGB in [0, 1], giving Y*255 - 16 (HINet's PSNRLoss `coef`, MATLAB rgb2ycbcr).
_Y_COEF = (65.481, 128.553, 24.966)


# --------------------------------------------------------------------------------------------------- helpers
def _number(value, name: str, cls: str, minimum: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{cls}: {name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        rel = ">" if strict else ">="
        raise ConfigError(f"{cls}: {name} must be {rel} {minimum:g}, got {value!r}")
    return value


def _outputs(pred, loss: str) -> list:
    """The network's output as a list of Tensors (a single Tensor becomes a list of one)."""
    if isinstance(pred, (list, tuple)):
        outs = list(pred)
        if not outs:
            raise ConfigError(f"{loss}: the network returned an empty list of outputs")
        return outs
    return [pred]


def _shape(x) -> list:
    return [int(s) for s in x.shape]


def _check_gt(gt, loss: str, channels: int | None = None) -> None:
    if not paddle.in_dynamic_mode():
        return
    shape = _shape(gt)
    if len(shape) != 4 or (channels is not None and shape[1] != channels):
        c = channels if channels is not None else "C"
        raise ConfigError(f"{loss}: the ground truth must be an N x {c} x H x W tensor, got shape {shape}")


def _check_full_size(outs: list, gt, loss: str) -> None:
    """Every output must have the ground truth's shape (HINet's stages are all full size)."""
    if not paddle.in_dynamic_mode():
        return
    want = _shape(gt)
    for i, out in enumerate(outs):
        got = _shape(out)
        if got != want:
            hint = (" (MIMO-UNet's [H/4, H/2, H] outputs need MultiScaleFFTLoss)"
                    if len(outs) == 3 and got[2:] != want[2:] else "")
            raise ConfigError(f"{loss}: output {i} of {len(outs)} has shape {got} but the ground truth has "
                              f"{want}; every output must be full size{hint}")


def rgb_to_y_tensor(x):
    """N x 3 x H x W RGB in [0, 1] -> N x 1 x H x W BT.601 Y in [16/255, 235/255] (differentiable)."""
    c0, c1, c2 = _Y_COEF
    return (x[:, 0:1] * c0 + x[:, 1:2] * c1 + x[:, 2:3] * c2 + 16.0) / 255.0


def down_bilinear_quarter(x):
    """PyTorch's ``F.interpolate(x, scale_factor=0.25, mode='bilinear')`` (align_corners=False, no antialias)
    for H and W divisible by 4.

    The source coordinate of output pixel d is 4*d + 1.5, so each output is the mean of the central 2x2 of its
    4x4 block (rows and columns 4d+1 and 4d+2). This is NOT two bilinear x0.5 steps (that would be the full
    4x4 mean); MIMO-UNet's train.py interpolates the full-size ground truth by 0.25 in one call.
    """
    return 0.25 * (x[:, :, 1::4, 1::4] + x[:, :, 1::4, 2::4] + x[:, :, 2::4, 1::4] + x[:, :, 2::4, 2::4])


def _l1(a, b):
    return paddle.mean(paddle.abs(a - b))


def _fft_l1(a, b):
    """L1 between the full complex 2-D spectra stored as (real, imag): upstream's
    ``L1Loss()(torch.rfft(a, 2, onesided=False), torch.rfft(b, 2, onesided=False))``, i.e. the mean of
    |dRe| and |dIm| over N*C*H*W*2 numbers. The FFT is linear, so the spectrum of the difference is taken
    (one FFT instead of two, and less float32 cancellation on the large DC terms)."""
    d = paddle.fft.fft2(a - b)
    return 0.5 * (paddle.mean(paddle.abs(paddle.real(d))) + paddle.mean(paddle.abs(paddle.imag(d))))


# ---------------------------------------------------------------------------------------------------- losses
@LOSSES.register
class L1Loss(nn.Layer):
    """Mean absolute error times `loss_weight`, summed over a list of full-size outputs (HINet SIDD recipe)."""

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = _number(loss_weight, "loss_weight", "L1Loss")

    def forward(self, pred, gt):
        outs = _outputs(pred, "L1Loss")
        _check_gt(gt, "L1Loss")
        _check_full_size(outs, gt, "L1Loss")
        total = _l1(outs[0], gt)
        for out in outs[1:]:
            total = total + _l1(out, gt)
        return self.loss_weight * total


@LOSSES.register
class PSNRLoss(nn.Layer):
    """HINet's PSNR loss (GoPro, REDS, Rain13k recipes), summed over a list of full-size outputs:

        loss_weight * 10 / ln(10) * mean_over_batch( log( mean_per_image((pred - gt)^2) + 1e-8 ) )

    i.e. minus `loss_weight` times the batch-mean PSNR (peak 1) in dB, up to the 1e-8. With `to_y` both images
    are converted to BT.601 Y (``(65.481 R + 128.553 G + 24.966 B + 16) / 255``) first, as upstream's ``toY``.
    """

    def __init__(self, loss_weight: float = 0.5, to_y: bool = False):
        super().__init__()
        self.loss_weight = _number(loss_weight, "loss_weight", "PSNRLoss")
        if not isinstance(to_y, bool):
            raise ConfigError(f"PSNRLoss: to_y must be true or false, got {to_y!r}")
        self.to_y = to_y
        self.scale = 10.0 / math.log(10.0)

    def _one(self, pred, gt):
        mse = paddle.mean((pred - gt) ** 2, axis=[1, 2, 3])
        return paddle.mean(paddle.log(mse + 1e-8))

    def forward(self, pred, gt):
        outs = _outputs(pred, "PSNRLoss")
        _check_gt(gt, "PSNRLoss", 3 if self.to_y else None)
        _check_full_size(outs, gt, "PSNRLoss")
        if self.to_y:
            gt = rgb_to_y_tensor(gt)
            outs = [rgb_to_y_tensor(o) for o in outs]
        total = self._one(outs[0], gt)
        for out in outs[1:]:
            total = total + self._one(out, gt)
        return (self.loss_weight * self.scale) * total


@LOSSES.register
class CharbonnierLoss(nn.Layer):
    """MIRNet's Charbonnier loss ``mean(sqrt((pred - gt)^2 + eps^2))`` times `loss_weight`, on the output clamped
    to [0, 1] when `clamp_pred` (MIRNet's train_denoising.py clamps before the loss). A list of full-size outputs
    is summed."""

    def __init__(self, eps: float = 1e-3, loss_weight: float = 1.0, clamp_pred: bool = True):
        super().__init__()
        self.eps = _number(eps, "eps", "CharbonnierLoss", minimum=0.0, strict=True)
        self.loss_weight = _number(loss_weight, "loss_weight", "CharbonnierLoss")
        if not isinstance(clamp_pred, bool):
            raise ConfigError(f"CharbonnierLoss: clamp_pred must be true or false, got {clamp_pred!r}")
        self.clamp_pred = clamp_pred

    def _one(self, pred, gt):
        if self.clamp_pred:
            pred = paddle.clip(pred, 0.0, 1.0)
        diff = pred - gt
        return paddle.mean(paddle.sqrt(diff * diff + self.eps * self.eps))

    def forward(self, pred, gt):
        outs = _outputs(pred, "CharbonnierLoss")
        _check_gt(gt, "CharbonnierLoss")
        _check_full_size(outs, gt, "CharbonnierLoss")
        total = self._one(outs[0], gt)
        for out in outs[1:]:
            total = total + self._one(out, gt)
        return self.loss_weight * total


@LOSSES.register
class MultiScaleFFTLoss(nn.Layer):
    """MIMO-UNet's loss for its three outputs ``[H/4, H/2, H]`` (chosj95/MIMO-UNet train.py):

        content = sum over the 3 scales of mean|pred_s - gt_s|
        fft     = sum over the 3 scales of mean|F(pred_s) - F(gt_s)| over (real, imag)
        loss    = content + fft_weight * fft            (fft_weight 0.1 upstream)

    with gt_2 = bilinear x0.5 of gt (2x2 mean, `common.down_bilinear2`) and gt_4 = PyTorch bilinear x0.25 of
    the full-size gt in one step (`down_bilinear_quarter`: the central 2x2 of each 4x4 block, not the 4x4 mean).
    F is the unnormalised full complex 2-D FFT over H and W (upstream ``torch.rfft(x, 2, onesided=False)``,
    here ``paddle.fft.fft2``); the scale terms are summed, not averaged. H and W must be multiples of 4.
    After each call `last_terms` holds the detached ``content`` and ``fft`` sums (upstream logs both).
    """

    def __init__(self, fft_weight: float = 0.1):
        super().__init__()
        self.fft_weight = _number(fft_weight, "fft_weight", "MultiScaleFFTLoss", minimum=0.0)
        self.last_terms: dict = {}

    def forward(self, pred, gt):
        name = "MultiScaleFFTLoss"
        if not isinstance(pred, (list, tuple)) or len(pred) != 3:
            got = f"a list of {len(pred)}" if isinstance(pred, (list, tuple)) else "a single tensor"
            raise ConfigError(f"{name}: expects MIMO-UNet's 3 outputs [H/4, H/2, H], got {got}; "
                              f"use L1Loss, PSNRLoss or CharbonnierLoss for other networks")
        _check_gt(gt, name)
        if paddle.in_dynamic_mode():
            h, w = _shape(gt)[2:]
            if h % 4 or w % 4:
                raise ConfigError(f"{name}: H and W of the ground truth must be multiples of 4, got {h}x{w}")
        targets = [down_bilinear_quarter(gt), down_bilinear2(gt), gt]
        if paddle.in_dynamic_mode():
            for i, (out, tgt) in enumerate(zip(pred, targets)):
                if _shape(out) != _shape(tgt):
                    raise ConfigError(f"{name}: output {i} has shape {_shape(out)}, expected {_shape(tgt)} "
                                      f"(outputs must be ordered [H/4, H/2, H] for a ground truth of "
                                      f"{_shape(gt)})")
        content = _l1(pred[0], targets[0])
        fft = _fft_l1(pred[0], targets[0])
        for out, tgt in zip(pred[1:], targets[1:]):
            content = content + _l1(out, tgt)
            fft = fft + _fft_l1(out, tgt)
        self.last_terms = {"content": content.detach(), "fft": fft.detach()}
        return content + self.fft_weight * fft


def build_loss(section: dict, source: str = "") -> nn.Layer:
    """A loss from a config's `loss:` mapping, e.g. ``{"type": "PSNRLoss", "loss_weight": 0.5}``; `source` (the
    config file) is named in errors."""
    return LOSSES.build(section, "loss", source)
