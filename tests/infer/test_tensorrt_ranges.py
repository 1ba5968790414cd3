"""The TensorRT route's CPU-checkable parts (ppir.infer.tensorrt): the min / optimal / max input shapes it gives
paddle.tensorrt.convert from inference.yml, the one-line refusal of an input outside them, and the reason it gives
where TensorRT cannot run (this CPU build). The conversion itself runs in tests/gpu/test_inference.py."""
import pytest

from ppir.infer.backends import BackendError, PaddleInferenceBackend
from ppir.infer.deploy_info import DeployInfo
from ppir.infer.tensorrt import MAX_SIDE, OPT_SIDE, TensorRTUnavailable, check_in_range, shape_range, \
    unavailable_reason


def test_a_fixed_shape_export_is_its_own_range():
    info = DeployInfo("HINet", size_multiple=16, input_shape=[1, 3, 64, 96])
    assert shape_range(info) == ([1, 3, 64, 96],) * 3


def test_a_dynamic_export_runs_from_its_smallest_size_to_its_tile():
    info = DeployInfo("MIRNet", size_multiple=8, min_size=20, tile=250)
    low, opt, high = shape_range(info)
    assert low == [1, 3, 24, 24]        # min_size 20 padded to the multiple 8
    assert high == [1, 3, 256, 256]     # the tile padded to the multiple (run_tiled pads tiles the same way)
    assert opt == high                  # a tiled export runs tile-sized inputs most of the time


def test_an_untiled_dynamic_export_has_a_stated_maximum():
    info = DeployInfo("MIMOUNet", size_multiple=4)
    assert shape_range(info) == ([1, 3, 4, 4], [1, 3, OPT_SIDE, OPT_SIDE], [1, 3, MAX_SIDE, MAX_SIDE])


def test_an_input_outside_the_range_is_one_line():
    ranges = shape_range(DeployInfo("HINet", size_multiple=16, tile=64))
    check_in_range((1, 3, 64, 16), ranges)
    for shape in [(1, 3, 80, 64), (1, 3, 8, 64), (2, 3, 64, 64)]:
        with pytest.raises(TensorRTUnavailable, match=r"outside the TensorRT engine's shape range") as e:
            check_in_range(shape, ranges)
        assert "\n" not in str(e.value)


def test_this_cpu_build_says_why_tensorrt_cannot_run(tiny_hinet_export):
    import paddle

    if paddle.device.is_compiled_with_cuda():
        pytest.skip("a CUDA build: tests/gpu/test_inference.py runs TensorRT")
    assert unavailable_reason() == "this Paddle build has no CUDA (TensorRT needs a GPU build)"
    with pytest.raises(BackendError, match="needs --use_gpu True"):
        PaddleInferenceBackend(tiny_hinet_export, use_tensorrt=True)
