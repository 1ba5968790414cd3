"""The GPU check suite (docs/gpu.md): run on a machine with a CUDA build of Paddle and an NVIDIA GPU as

    NVIDIA_TF32_OVERRIDE=0 python -m pytest -q tests/gpu

Without a CUDA device every test here skips with the reason, so a GPU machine whose wheel cannot see its card
would look green: `PPIR_REQUIRE_GPU=1` (set by tests/gpu/run.sh unless told otherwise) turns every "no GPU" skip
into a failure with one line saying why. `PPIR_GPU_SUITE_DEVICE=cpu` forces the suite onto the CPU: the checks
that mean something there run (forward parity, fp32 training and exact resume, Paddle Inference with dynamic
shapes and tiles, serving, AMP's float32 fallback), and those that need a GPU (AMP numerics, TensorRT, two GPUs)
skip with a reason. That mode proves the suite executes where no GPU is lent.
"""
import os

FORCED_CPU = os.environ.get("PPIR_GPU_SUITE_DEVICE", "").strip().lower() == "cpu"
REQUIRE_GPU = os.environ.get("PPIR_REQUIRE_GPU", "").strip().lower() in ("1", "true", "yes", "on")
if FORCED_CPU:
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the trainer and the backends pick the GPU whenever one is visible
# TF32 would make GPU float32 convs/matmuls round to 10-bit mantissas; the tolerances here assume true float32.
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
os.environ.setdefault("FLAGS_cudnn_deterministic", "1")  # exact resume needs deterministic cuDNN algorithms

import pytest  # noqa: E402

# tests/gpu is a package (its __init__.py), so `from conftest import ...` in its modules is tests/conftest.py
# (tests/ is on sys.path: pyproject's pytest pythonpath).


def gpu_count() -> int:
    import paddle

    if not paddle.device.is_compiled_with_cuda():
        return 0
    return paddle.device.cuda.device_count()


def _no_gpu_reason() -> str:
    import paddle

    build = "a CUDA build" if paddle.device.is_compiled_with_cuda() else "the CPU-only build"
    return (f"no CUDA device (Paddle {paddle.__version__} is {build}); install requirements-gpu.txt on a GPU "
            f"machine, or set PPIR_GPU_SUITE_DEVICE=cpu to run the checks a CPU can run")


def no_gpu(reason: str):
    """Skip for want of a GPU, or fail with `reason` on one line when PPIR_REQUIRE_GPU=1 says a GPU must be here."""
    if REQUIRE_GPU:
        pytest.fail(f"PPIR_REQUIRE_GPU=1: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def device():
    """'gpu:0', or 'cpu' when forced; skips the test when neither applies (fails under PPIR_REQUIRE_GPU=1)."""
    import paddle

    if FORCED_CPU:
        if REQUIRE_GPU:
            pytest.fail("PPIR_REQUIRE_GPU=1 and PPIR_GPU_SUITE_DEVICE=cpu ask for opposite things", pytrace=False)
        return "cpu"
    if gpu_count() < 1:
        no_gpu(_no_gpu_reason())
    try:  # the same as the environment variables above, for a process that imported paddle before this file
        paddle.set_flags({"FLAGS_cudnn_deterministic": True})
    except Exception:  # noqa: BLE001 - flag names differ between builds; the env variable is the main route
        pass
    return "gpu:0"


@pytest.fixture
def on_device(device):
    """Run the test body with `device` as paddle's default device (restored afterwards)."""
    import paddle

    before = paddle.get_device()
    paddle.set_device(device)
    yield device
    paddle.set_device(before)


@pytest.fixture
def gpu_only(device):
    """For checks that mean nothing on a CPU (AMP numerics, TensorRT): skip when forced onto the CPU."""
    if device == "cpu":
        pytest.skip("needs a GPU (suite forced onto the CPU)")
    return device
