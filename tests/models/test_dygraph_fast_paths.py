"""The fast forms in models/common.py (training speed on Paddle's own CPU kernels) against the ops they replace.

Each form must give the same forward values and the same gradients as the op it replaces, and must leave
exported programs (static, traced in eval mode) exactly as they were; static programs traced in training mode
(train.engine: to_static) get the fast forms too. Whole networks are covered by the golden parity tests
(dygraph), the export tests (static, eval) and the engine tests (to_static training); these pin each form on
its own, gradients included.
"""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

from ppir.models import common


def _grads(fn, inputs, params=()):
    """Output and d(sum(out * r))/d(inputs, params) for a fixed random r."""
    for t in (*inputs, *params):
        t.clear_gradient() if t.grad is not None else None
    out = fn(*inputs)
    r = paddle.to_tensor(np.random.RandomState(7).randn(*out.shape).astype(np.float32))
    (out * r).sum().backward()
    return out.numpy(), [t.grad.numpy().copy() for t in (*inputs, *params)]


def _leaf(a):
    t = paddle.to_tensor(a)
    t.stop_gradient = False
    return t


@pytest.mark.parametrize("kernel,groups", [(3, 1), (1, 1), (3, 4)])
def test_conv2d_bias_add_matches_nn_conv2d(kernel, groups):
    paddle.seed(0)
    fast = common.Conv2D(4, 8, kernel, padding=kernel // 2, groups=groups)
    plain = nn.Conv2D(4, 8, kernel, padding=kernel // 2, groups=groups)
    plain.set_state_dict(fast.state_dict())
    x = np.random.RandomState(0).randn(2, 4, 9, 7).astype(np.float32)
    xa, xb = _leaf(x), _leaf(x)
    out_a, g_a = _grads(fast, [xa], [fast.weight, fast.bias])
    out_b, g_b = _grads(plain, [xb], [plain.weight, plain.bias])
    np.testing.assert_allclose(out_a, out_b, rtol=0, atol=1e-6)
    for a, b in zip(g_a, g_b):  # the bias gradient is a sum over N*H*W terms: summation order differs
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_conv2d_transpose_bias_add_matches_nn_conv2d_transpose():
    paddle.seed(0)
    fast = common.Conv2DTranspose(4, 6, 2, stride=2)
    plain = nn.Conv2DTranspose(4, 6, 2, stride=2)
    plain.set_state_dict(fast.state_dict())
    x = np.random.RandomState(1).randn(2, 4, 5, 6).astype(np.float32)
    out_a, g_a = _grads(fast, [_leaf(x)], [fast.weight, fast.bias])
    out_b, g_b = _grads(plain, [_leaf(x)], [plain.weight, plain.bias])
    np.testing.assert_allclose(out_a, out_b, rtol=0, atol=1e-6)
    for a, b in zip(g_a, g_b):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_channel_max_matches_max_values_and_gradient():
    x = np.random.RandomState(2).randn(2, 6, 5, 4).astype(np.float32)
    out_a, (g_a,) = _grads(lambda t: common.channel_max(t, True), [_leaf(x)])
    out_b, (g_b,) = _grads(lambda t: paddle.max(t, axis=1, keepdim=True), [_leaf(x)])
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_array_equal(g_a, g_b)


def test_channel_max_gives_a_tie_s_gradient_to_the_first_maximum_like_torch_max():
    x = _leaf(np.array([1.0, 3.0, 3.0], dtype=np.float32).reshape(1, 3, 1, 1))
    common.channel_max(x, True).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy().ravel(), [0.0, 1.0, 0.0])


@pytest.mark.parametrize("slope", [0.2, 0.01, 1.5])
def test_leaky_relu_dygraph_equals_the_static_form(slope):
    x = np.random.RandomState(3).randn(2, 3, 4, 5).astype(np.float32)
    out_a, (g_a,) = _grads(lambda t: common.leaky_relu(t, slope, True), [_leaf(x)])
    form = (lambda t: paddle.maximum(t, t * slope)) if slope <= 1 else (lambda t: paddle.minimum(t, t * slope))
    out_b, (g_b,) = _grads(form, [_leaf(x)])
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_array_equal(g_a, g_b)


@pytest.mark.parametrize("num_parameters", [1, 5])
def test_prelu_dygraph_equals_the_static_form(num_parameters):
    paddle.seed(0)
    layer = common.PReLU(num_parameters, init=0.3)
    layer._weight.set_value(paddle.to_tensor(np.linspace(-0.5, 1.5, num_parameters).astype(np.float32)))
    x = np.random.RandomState(4).randn(2, 5, 4, 3).astype(np.float32)
    out_a, g_a = _grads(layer, [_leaf(x)], [layer._weight])

    def form(t):
        w = layer._weight if num_parameters == 1 else layer._weight.reshape([1, -1, 1, 1])
        return t * w + F.relu(t) * (1.0 - w)

    out_b, g_b = _grads(form, [_leaf(x)], [layer._weight])
    np.testing.assert_allclose(out_a, out_b, rtol=0, atol=1e-6)
    for a, b in zip(g_a, g_b):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,like,expanded", [
    ((1, 4, 1, 1), (3, 4, 5, 6), (3, 4, 1, 1)),   # a bias: only the batch axis needs expanding
    ((3, 1, 5, 6), (3, 4, 5, 6), (3, 4, 5, 6)),   # a spatial map: broadcast before full axes
    ((3, 4, 1, 1), (3, 4, 5, 6), (3, 4, 1, 1)),   # trailing broadcast only: already fast, left alone
    ((3, 4, 5, 6), (3, 4, 5, 6), (3, 4, 5, 6)),
])
def test_trailing_broadcast_expands_only_what_the_slow_kernels_need(shape, like, expanded):
    t = paddle.ones(shape)
    got = common.trailing_broadcast(t, paddle.ones(like), training=False)  # dygraph: always
    assert tuple(got.shape) == expanded
    np.testing.assert_array_equal((got * paddle.ones(like)).numpy(), np.ones(like, np.float32))


def _static_ops(training):
    """The ops of a static program made of each form, traced in training or in eval mode."""
    paddle.enable_static()
    try:
        main = paddle.static.Program()
        with paddle.static.program_guard(main, paddle.static.Program()):
            x = paddle.static.data("x", [2, 4, 8, 8], "float32")
            t = paddle.static.data("t", [1, 4, 1, 1], "float32")
            same = common.trailing_broadcast(t, x, training) is t
            common.channel_max(x, training)
            common.leaky_relu(x, 0.2, training)
            conv = common.Conv2D(4, 4, 3, padding=1)
            conv.train() if training else conv.eval()
            conv(x)
        return same, [op.name() for op in main.global_block().ops]
    finally:
        paddle.disable_static()


def test_exported_programs_keep_the_plain_ops():
    """Programs traced in eval mode (what export compiles for every backend) hold the export-safe forms."""
    same, ops = _static_ops(training=False)
    assert same
    assert "pd_op.max" in ops and "pd_op.argmax" not in ops and "pd_op.take_along_axis" not in ops
    assert "pd_op.maximum" in ops and "pd_op.leaky_relu" not in ops
    assert "pd_op.expand" not in ops


def test_training_programs_get_the_fast_forms():
    """Programs traced in training mode (train.engine: to_static) run on Paddle's own kernels: fast forms."""
    same, ops = _static_ops(training=True)
    assert not same
    assert "pd_op.take_along_axis" in ops and "pd_op.max" not in ops
    assert "pd_op.leaky_relu" in ops and "pd_op.maximum" not in ops
    assert "pd_op.expand" in ops
