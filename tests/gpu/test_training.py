"""A few training steps of each network at a reduced width, in float32 and in every AMP mode the device has,
with the trainer users run (ppir.engine.trainer.Trainer, as tools/train.py builds it).

* No NaN or inf in any mode.
* The per-step losses of an AMP run stay within a relative tolerance of the float32 run's. The first loss is a
  forward pass only: float16 keeps 11 significant bits (relative rounding 2^-11 = 4.9e-4 per op), bfloat16 8
  (3.9e-3); over the few dozen layers these nets have, errors of independent sign add up to roughly sqrt(depth)
  times that, ~3e-3 (fp16) and ~2.5e-2 (bf16). The following steps add the different gradients' effect through
  Adam at lr 1e-3. Tolerances: 2e-2 (float16) and 8e-2 (bfloat16) relative, a few times the estimate; a broken
  AMP path (no loss scaling, fp16 overflow, a layer left in the wrong dtype) is off by far more or gives NaN.
* The dtype that really ran, not only the losses (an AMP path that silently runs float32 would pass those): the
  output dtype of every convolution inside the trainer's autocast region is the AMP dtype; under O2 the
  convolution weights are stored in it and the optimizer keeps float32 master weights for them.
* A run resumed from its mid-run checkpoint ends with exactly the uninterrupted run's weights (float32 and
  float16 O1 with its loss scaler): deterministic cuDNN (FLAGS_cudnn_deterministic, set by conftest). MIRNet on
  a GPU is the known exception: the backward of its replicate padding (pad3d, mode "replicate") adds the
  gradients of the border pixels with atomicAdd, whose order, and so float32 rounding, changes from run to run
  even with deterministic cuDNN. Its resumed weights are held to RESUME_ATOL_MIRNET_GPU instead (below).
* Forced onto the CPU, AMP is refused by the trainer with a warning and the run is float32: checked as such.
"""
import math
import os
import re

import numpy as np
import pytest

from ppir.convert.paddle_pickle import read_paddle_pdparams

from conftest import TINY_NETWORKS as NETWORKS, tiny_train_config

MODES = {  # name: (train overrides, relative loss tolerance against float32)
    "fp32": ({}, 0.0),
    "O1-float16": ({"amp": True, "amp_level": "O1", "amp_dtype": "float16"}, 2e-2),
    "O2-float16": ({"amp": True, "amp_level": "O2", "amp_dtype": "float16"}, 2e-2),
    "O1-bfloat16": ({"amp": True, "amp_level": "O1", "amp_dtype": "bfloat16"}, 8e-2),
    "O2-bfloat16": ({"amp": True, "amp_level": "O2", "amp_dtype": "bfloat16"}, 8e-2),
}
STEPS = 6
# MIRNet on a GPU: 3 resumed steps of Adam at lr 1e-3 move a weight by at most ~3e-3; atomic-add reordering in the
# replicate pad's backward perturbs gradients by a few float32 ulps, which Adam's normalised step turns into weight
# differences of the order of lr * 1e-6 per step. 1e-6 absolute allows that while a resume that restored the
# wrong optimizer state or learning rate (differences ~1e-4 to 1e-3) still fails.
RESUME_ATOL_MIRNET_GPU = 1e-6
LOSS_LINE = re.compile(r"iter (\d+)/\d+ .*?loss (\S+)")


def config(net, out_dir, **train):
    return tiny_train_config(net, out_dir, STEPS, **train)


def train(cfg, resume=None):
    from ppir.engine.trainer import Trainer

    Trainer(cfg, resume=resume, progress=False).train()


def losses(out_dir):
    with open(os.path.join(out_dir, "train.log")) as f:
        found = {int(m.group(1)): float(m.group(2)) for m in map(LOSS_LINE.search, f) if m}
    assert sorted(found) == list(range(1, STEPS + 1)), found
    return [found[i] for i in range(1, STEPS + 1)]


def final_weights(out_dir):
    return read_paddle_pdparams(os.path.join(out_dir, "checkpoints", f"iter_{STEPS:08d}", "model.pdparams"))


@pytest.fixture(scope="module")
def fp32_losses(device, tmp_path_factory):
    out = {}
    for net in NETWORKS:
        d = tmp_path_factory.mktemp(f"fp32_{net}")
        train(config(net, d))
        out[net] = losses(d)
    return out


@pytest.mark.parametrize("mode", [m for m in MODES if m != "fp32"])
@pytest.mark.parametrize("net", sorted(NETWORKS))
def test_amp_steps_follow_float32(device, fp32_losses, tmp_path, net, mode):
    import paddle

    overrides, tol = MODES[mode]
    if device == "cpu":
        pytest.skip("AMP needs a GPU (suite forced onto the CPU; test_amp_on_cpu_is_float32 covers the fallback)")
    if "bfloat16" in mode and not paddle.amp.is_bfloat16_supported():
        pytest.skip(f"this GPU has no bfloat16 support ({paddle.device.cuda.get_device_name()})")
    train(config(net, tmp_path, **overrides))
    got, want = np.array(losses(tmp_path)), np.array(fp32_losses[net])
    assert np.isfinite(got).all(), got
    rel = np.abs(got - want) / np.abs(want)
    assert rel.max() < tol, f"{net} {mode}: losses {got} vs float32 {want} (max relative {rel.max():.2e})"


def conv_dtypes_while_training(cfg):
    """Train `cfg` with the users' trainer, recording the output dtype of every Conv2D forward; returns
    (the trainer after training, the set of dtypes seen)."""
    import paddle

    from ppir.engine.trainer import Trainer

    trainer = Trainer(cfg, progress=False)
    seen = set()
    for layer in trainer.model.sublayers():
        if isinstance(layer, paddle.nn.Conv2D):
            layer.register_forward_post_hook(lambda _layer, _inputs, output: seen.add(output.dtype))
    trainer.train()
    return trainer, seen


@pytest.mark.parametrize("mode", [m for m in MODES if m != "fp32"])
def test_amp_convolutions_run_in_the_amp_dtype(device, tmp_path, mode):
    """Inside the trainer's autocast region the convolutions output the AMP dtype (not float32); under O2 the
    conv weights are stored in it and the optimizer holds float32 master copies. On a CPU (forced) the trainer
    refuses AMP, and the convolutions are float32: asserted as such, so this test runs in both modes."""
    import paddle

    overrides, _ = MODES[mode]
    if device != "cpu" and "bfloat16" in mode and not paddle.amp.is_bfloat16_supported():
        pytest.skip(f"this GPU has no bfloat16 support ({paddle.device.cuda.get_device_name()})")
    trainer, seen = conv_dtypes_while_training(config("hinet", tmp_path, **overrides))
    if device == "cpu":
        assert seen == {paddle.float32}, seen
        return
    want = getattr(paddle, overrides["amp_dtype"])
    assert seen == {want}, f"{mode}: convolutions ran in {seen}, not {want}"
    convs = [m for m in trainer.model.sublayers() if isinstance(m, paddle.nn.Conv2D)]
    if overrides["amp_level"] == "O2":
        assert {c.weight.dtype for c in convs} == {want}
        masters = getattr(trainer.optimizer, "_master_weights", {})
        assert masters and {v.dtype for v in masters.values()} == {paddle.float32}, masters.keys()
    else:
        assert {c.weight.dtype for c in convs} == {paddle.float32}  # O1 keeps float32 weights


def test_amp_on_cpu_is_float32(device, fp32_losses, tmp_path):
    if device != "cpu":
        pytest.skip("the CPU fallback of AMP (runs when the suite is forced onto the CPU)")
    train(config("hinet", tmp_path, amp=True))
    text = open(os.path.join(tmp_path, "train.log")).read()
    assert "AMP requested" in text and "CPU run" in text
    assert losses(tmp_path) == fp32_losses["hinet"]


@pytest.mark.parametrize("mode", ["fp32", "O1-float16"])
@pytest.mark.parametrize("net", sorted(NETWORKS))
def test_resume_is_exact(device, tmp_path, net, mode):
    overrides, _ = MODES[mode]
    if device == "cpu" and overrides:
        pytest.skip("AMP needs a GPU (suite forced onto the CPU)")
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    train(config(net, full, **overrides))
    train(config(net, resumed, **overrides), resume=str(full / "checkpoints" / f"iter_{STEPS // 2:08d}"))
    a, b = final_weights(full), final_weights(resumed)
    assert a.keys() == b.keys()
    if net == "mirnet" and device != "cpu":  # atomic adds in the replicate pad's backward (module docstring)
        worst = max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)
        assert worst <= RESUME_ATOL_MIRNET_GPU, f"{net} {mode}: resumed weights differ by {worst:.2e}"
    else:
        assert all(np.array_equal(a[k], b[k]) for k in a), f"{net} {mode}: resumed weights differ"
    assert all(math.isfinite(v) for v in losses(full))
