"""The training-speed rewrites of models/common.py (`native_kernels`) against the export-safe forms they replace,
over whole training runs: 4 Adam steps of each tiny network, once as the trainer runs it (fast forms) and once
with `native_kernels` forced off, so dygraph computes the plain forms that exported programs hold (max op,
broadcasting bias adds, maximum-LeakyReLU, formula PReLU).

Bounds: the logged losses within 1e-5 relative, and the two trained networks' outputs on a fixed batch within
1e-4. Weights are not compared one by one: a parameter whose true gradient is zero (HINet's conv bias before an
instance norm) gets rounding noise that differs between the forms, and Adam turns any noise into steps of
about the learning rate (measured: 1.2e-3 on such a bias after 4 steps, with equal losses and outputs).
"""
import re

import numpy as np
import pytest

from ppir.models import common

from conftest import TINY_NETWORKS, tiny_train_config

STEPS = 4


def run(net, out_dir):
    """Train, then the logged losses and the trained network's output on a fixed batch (plain forms: eval)."""
    import paddle

    import ppir
    from ppir.engine.trainer import Trainer
    from ppir.weights import load_weights

    cfg = tiny_train_config(net, out_dir, STEPS)
    Trainer(cfg, progress=False).train()
    losses = [float(v) for v in re.findall(r"iter \d+/\d+ .*?loss (\S+)", (out_dir / "train.log").read_text())]
    model = ppir.build_model(cfg, [])
    load_weights(model, str(out_dir / "checkpoints" / f"iter_{STEPS:08d}"))
    model.eval()
    x = paddle.to_tensor(np.random.RandomState(5).rand(1, 3, 32, 32).astype(np.float32))
    with paddle.no_grad():
        out = model(x)
    return losses, (out[-1] if isinstance(out, (list, tuple)) else out).numpy()


@pytest.mark.parametrize("net", sorted(TINY_NETWORKS))
def test_fast_forms_train_like_the_plain_forms(tmp_path, monkeypatch, net):
    fast_losses, fast_out = run(net, tmp_path / "fast")
    monkeypatch.setattr(common, "native_kernels", lambda training: False)
    plain_losses, plain_out = run(net, tmp_path / "plain")
    assert len(fast_losses) == STEPS
    np.testing.assert_allclose(fast_losses, plain_losses, rtol=1e-5, atol=0)
    np.testing.assert_allclose(fast_out, plain_out, rtol=0, atol=1e-4)


def test_forcing_native_kernels_off_selects_the_plain_forms(monkeypatch):
    """The switch the test above relies on is real: with it off, a bias is no longer expanded in dygraph."""
    import paddle

    bias, out = paddle.ones([1, 4, 1, 1]), paddle.ones([2, 4, 3, 3])
    assert list(common.trailing_broadcast(bias, out, True).shape) == [2, 4, 1, 1]
    monkeypatch.setattr(common, "native_kernels", lambda training: False)
    assert common.trailing_broadcast(bias, out, True) is bias
