"""ppir.losses against hand computations in numpy (small tensors, CPU, fast)."""
import math

import numpy as np
import paddle
import pytest

from ppir.errors import ConfigError
from ppir.losses import (CharbonnierLoss, L1Loss, MultiScaleFFTLoss, PSNRLoss, build_loss,
                         down_bilinear_quarter)
from ppir.registry import LOSSES

RNG = np.random.default_rng(1234)


def _rand(*shape, lo=0.0, hi=1.0, dtype="float64"):
    return RNG.uniform(lo, hi, size=shape).astype(dtype)


def _t(a, grad=False):
    return paddle.to_tensor(a, stop_gradient=not grad)


def _val(t):
    return float(t.numpy())


# --------------------------------------------------------------------------- numpy references
def np_psnr_loss(pred, gt, w):
    mse = ((pred - gt) ** 2).reshape(pred.shape[0], -1).mean(axis=1)
    return w * 10 / math.log(10) * np.mean(np.log(mse + 1e-8))


def np_y(x):  # N x 3 x H x W in [0, 1] -> N x 1 x H x W, HINet's toY
    return ((65.481 * x[:, 0] + 128.553 * x[:, 1] + 24.966 * x[:, 2] + 16.0) / 255.0)[:, None]


def torch_bilinear_matrix(n_in, scale_factor):
    """Rows of PyTorch's bilinear interpolation (align_corners=False, no antialias) along one axis, written
    from its source-index formula src = (dst + 0.5) / scale_factor - 0.5, clamped at 0."""
    n_out = int(math.floor(n_in * scale_factor))
    m = np.zeros((n_out, n_in))
    for d in range(n_out):
        src = max((d + 0.5) / scale_factor - 0.5, 0.0)
        i0 = int(math.floor(src))
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        m[d, i0] += 1 - lam
        m[d, i1] += lam
    return m


def np_torch_bilinear(x, scale_factor):
    mh = torch_bilinear_matrix(x.shape[2], scale_factor)
    mw = torch_bilinear_matrix(x.shape[3], scale_factor)
    return np.einsum("hi,ncij,wj->nchw", mh, x, mw)


def np_mimo_loss(preds, gt, fft_weight=0.1):
    targets = [np_torch_bilinear(gt, 0.25), np_torch_bilinear(gt, 0.5), gt]
    content = sum(np.mean(np.abs(p - t)) for p, t in zip(preds, targets))
    fft = 0.0
    for p, t in zip(preds, targets):
        fp, ft = np.fft.fft2(p, axes=(-2, -1)), np.fft.fft2(t, axes=(-2, -1))
        stacked_p = np.stack([fp.real, fp.imag], axis=-1)  # torch.rfft(..., onesided=False) layout
        stacked_t = np.stack([ft.real, ft.imag], axis=-1)
        fft += np.mean(np.abs(stacked_p - stacked_t))
    return content + fft_weight * fft, content, fft


# --------------------------------------------------------------------------------------- L1
def test_l1_single_and_list():
    p1, p2, gt = _rand(2, 3, 5, 6), _rand(2, 3, 5, 6), _rand(2, 3, 5, 6)
    assert _val(L1Loss()(_t(p1), _t(gt))) == pytest.approx(np.mean(np.abs(p1 - gt)), rel=1e-12)
    want = 2.5 * (np.mean(np.abs(p1 - gt)) + np.mean(np.abs(p2 - gt)))
    assert _val(L1Loss(loss_weight=2.5)([_t(p1), _t(p2)], _t(gt))) == pytest.approx(want, rel=1e-12)


# -------------------------------------------------------------------------------------- PSNR
def test_psnr_loss_matches_hinet_formula_summed_over_stages():
    p1, p2, gt = _rand(3, 3, 4, 5), _rand(3, 3, 4, 5), _rand(3, 3, 4, 5)
    loss = PSNRLoss()  # default weight 0.5, as HINet's GoPro/REDS/Rain13k configs
    assert loss.loss_weight == 0.5
    assert _val(loss(_t(p1), _t(gt))) == pytest.approx(np_psnr_loss(p1, gt, 0.5), rel=1e-10)
    want = np_psnr_loss(p1, gt, 0.5) + np_psnr_loss(p2, gt, 0.5)
    assert _val(loss([_t(p1), _t(p2)], _t(gt))) == pytest.approx(want, rel=1e-10)


def test_psnr_loss_is_minus_psnr_for_weight_one():
    gt = np.full((1, 3, 4, 4), 0.5)
    pred = gt + 0.1  # MSE 0.01 -> 20 dB
    assert _val(PSNRLoss(loss_weight=1.0)(_t(pred), _t(gt))) == pytest.approx(-20.0, abs=1e-5)


def test_psnr_loss_to_y():
    p, gt = _rand(2, 3, 4, 4), _rand(2, 3, 4, 4)
    want = np_psnr_loss(np_y(p), np_y(gt), 0.5)
    assert _val(PSNRLoss(to_y=True)(_t(p), _t(gt))) == pytest.approx(want, rel=1e-10)


# -------------------------------------------------------------------------------- Charbonnier
def test_charbonnier_clamps_pred_by_default():
    p = _rand(2, 3, 4, 4, lo=-0.5, hi=1.5)
    gt = _rand(2, 3, 4, 4)
    eps = 1e-3
    clamped = np.clip(p, 0, 1)
    want = np.mean(np.sqrt((clamped - gt) ** 2 + eps * eps))
    raw = np.mean(np.sqrt((p - gt) ** 2 + eps * eps))
    assert _val(CharbonnierLoss()(_t(p), _t(gt))) == pytest.approx(want, rel=1e-12)
    assert _val(CharbonnierLoss(clamp_pred=False)(_t(p), _t(gt))) == pytest.approx(raw, rel=1e-12)
    assert abs(want - raw) > 1e-3  # the clamp matters on this input
    want2 = 2.0 * (want + np.mean(np.sqrt((np.clip(gt + 0.2, 0, 1) - gt) ** 2 + eps * eps)))
    got2 = CharbonnierLoss(loss_weight=2.0)([_t(p), _t(gt + 0.2)], _t(gt))
    assert _val(got2) == pytest.approx(want2, rel=1e-12)


def test_charbonnier_clamp_blocks_gradient_outside_range():
    p = np.array([-0.5, 0.25, 0.75, 1.5]).reshape(1, 1, 2, 2)
    gt = np.full_like(p, 0.5)
    x = _t(p, grad=True)
    CharbonnierLoss()(x, _t(gt)).backward()
    g = x.grad.numpy().ravel()
    assert g[0] == 0 and g[3] == 0
    d = np.array([-0.25, 0.25])
    np.testing.assert_allclose(g[1:3], d / np.sqrt(d * d + 1e-6) / 4, rtol=1e-10)


# ------------------------------------------------------------------------------ MIMO-UNet loss
def test_quarter_downsampling_is_torch_bilinear_not_two_halvings():
    x = _rand(2, 3, 8, 12)
    np.testing.assert_allclose(down_bilinear_quarter(_t(x)).numpy(), np_torch_bilinear(x, 0.25), atol=1e-12)
    # two 2x2 means (4x4 mean) is a different operator
    four_by_four = x.reshape(2, 3, 2, 4, 3, 4).mean(axis=(3, 5))
    assert np.abs(four_by_four - np_torch_bilinear(x, 0.25)).max() > 1e-3


def test_multiscale_fft_loss_against_numpy():
    gt = _rand(2, 3, 8, 12)
    preds = [_rand(2, 3, 2, 3), _rand(2, 3, 4, 6), _rand(2, 3, 8, 12)]
    loss = MultiScaleFFTLoss()
    got = loss([_t(p) for p in preds], _t(gt))
    want, content, fft = np_mimo_loss(preds, gt)
    assert _val(got) == pytest.approx(want, rel=1e-10)
    assert _val(loss.last_terms["content"]) == pytest.approx(content, rel=1e-10)
    assert _val(loss.last_terms["fft"]) == pytest.approx(fft, rel=1e-10)
    got_w = MultiScaleFFTLoss(fft_weight=0.5)([_t(p) for p in preds], _t(gt))
    assert _val(got_w) == pytest.approx(np_mimo_loss(preds, gt, 0.5)[0], rel=1e-10)


def test_multiscale_fft_loss_gradient_matches_finite_difference():
    gt = _rand(1, 3, 8, 8)
    preds = [_rand(1, 3, 2, 2), _rand(1, 3, 4, 4), _rand(1, 3, 8, 8)]
    xs = [_t(p, grad=True) for p in preds]
    MultiScaleFFTLoss()(xs, _t(gt)).backward()
    h = 1e-6
    for s, idx in [(0, (0, 1, 1, 0)), (2, (0, 2, 3, 5))]:
        up = [p.copy() for p in preds]
        dn = [p.copy() for p in preds]
        up[s][idx] += h
        dn[s][idx] -= h
        fd = (np_mimo_loss(up, gt)[0] - np_mimo_loss(dn, gt)[0]) / (2 * h)
        assert xs[s].grad.numpy()[idx] == pytest.approx(fd, rel=1e-5, abs=1e-8)


# ----------------------------------------------------------------------------- backward, float32
@pytest.mark.parametrize("loss, shapes", [
    (L1Loss(), [(2, 3, 8, 8), (2, 3, 8, 8)]),
    (PSNRLoss(), [(2, 3, 8, 8), (2, 3, 8, 8)]),
    (PSNRLoss(to_y=True), [(2, 3, 8, 8)]),
    (CharbonnierLoss(), [(2, 3, 8, 8)]),
    (MultiScaleFFTLoss(), [(2, 3, 2, 2), (2, 3, 4, 4), (2, 3, 8, 8)]),
])
def test_backward_runs_in_dygraph(loss, shapes):
    conv = paddle.nn.Conv2D(3, 3, 3, padding=1)
    x = _t(_rand(2, 3, 8, 8, dtype="float32"))
    outs = []
    for shape in shapes:
        y = conv(x)
        while y.shape[2] > shape[2]:
            y = y[:, :, ::2, ::2]
        outs.append(y)
    out = loss(outs if len(outs) > 1 else outs[0], _t(_rand(2, 3, 8, 8, dtype="float32")))
    assert out.shape == [] and out.dtype == paddle.float32
    out.backward()
    g = conv.weight.grad.numpy()
    assert np.isfinite(g).all() and np.abs(g).sum() > 0


# -------------------------------------------------------------------------------------- errors
def test_wrong_number_of_outputs_is_a_clear_error():
    gt = _t(_rand(1, 3, 8, 8))
    full = _t(_rand(1, 3, 8, 8))
    with pytest.raises(ConfigError, match="MultiScaleFFTLoss: expects MIMO-UNet's 3 outputs.*single tensor"):
        MultiScaleFFTLoss()(full, gt)
    with pytest.raises(ConfigError, match="got a list of 2"):
        MultiScaleFFTLoss()([full, full], gt)
    with pytest.raises(ConfigError, match=r"output 0 has shape \[1, 3, 8, 8\], expected \[1, 3, 2, 2\]"):
        MultiScaleFFTLoss()([full, full, full], gt)
    with pytest.raises(ConfigError, match="multiples of 4"):
        MultiScaleFFTLoss()([full, full, full], _t(_rand(1, 3, 6, 8)))
    mimo = [_t(_rand(1, 3, 2, 2)), _t(_rand(1, 3, 4, 4)), full]
    for loss in (L1Loss(), PSNRLoss(), CharbonnierLoss()):
        with pytest.raises(ConfigError, match="output 0 of 3 .*MultiScaleFFTLoss"):
            loss(mimo, gt)
        with pytest.raises(ConfigError, match="empty list"):
            loss([], gt)
    with pytest.raises(ConfigError, match="N x 3 x H x W"):
        PSNRLoss(to_y=True)(_t(_rand(1, 1, 8, 8)), _t(_rand(1, 1, 8, 8)))


def test_bad_constructor_arguments():
    with pytest.raises(ConfigError, match="eps must be > 0"):
        CharbonnierLoss(eps=0)
    with pytest.raises(ConfigError, match="fft_weight must be >= 0"):
        MultiScaleFFTLoss(fft_weight=-1)
    with pytest.raises(ConfigError, match="loss_weight must be a number"):
        L1Loss(loss_weight="1")


def test_registry_and_build():
    for name in ("L1Loss", "PSNRLoss", "CharbonnierLoss", "MultiScaleFFTLoss"):
        assert name in LOSSES
    loss = build_loss({"type": "PSNRLoss", "loss_weight": 1.0, "to_y": True})
    assert isinstance(loss, PSNRLoss) and loss.loss_weight == 1.0 and loss.to_y
    with pytest.raises(ConfigError, match="did you mean 'L1Loss'"):
        build_loss({"type": "L1loss"})


def test_config_validates_loss_section():
    from ppir.config import load_config

    load_config({"loss": {"type": "CharbonnierLoss", "eps": 0.001, "clamp_pred": True}})
    with pytest.raises(ConfigError, match="unknown key 'loss.weight'"):
        load_config({"loss": {"type": "L1Loss", "weight": 1.0}})
