"""What every benchmark here shares: thread settings, median timing, and the machine's float32 matmul peak
(measured in the same run, so that speeds are reported as fractions of it). Not part of the test suite."""
import os
import platform
import time


def set_threads(n: int) -> None:
    """Before numpy/paddle are imported: every BLAS/OpenMP pool gets `n` threads."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def median_time(fn, repeat: int, warmup: int) -> float:
    import numpy as np

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_peak(threads: int) -> dict:
    """GFLOP/s of a large float32 matmul in numpy's BLAS, ONNX Runtime (MLAS) and Paddle, same thread count."""
    import numpy as np
    import onnxruntime as ort
    import paddle
    from onnx import TensorProto, helper

    n = 2048
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    flops = 2.0 * n ** 3
    results = {"numpy": flops / median_time(lambda: a @ b, 7, 2) / 1e9}
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
                                .SerializeToString(), opts, providers=["CPUExecutionProvider"])
    results["onnxruntime"] = flops / median_time(lambda: sess.run(None, {"a": a, "b": b}), 7, 2) / 1e9
    pa, pb = paddle.to_tensor(a, place=paddle.CPUPlace()), paddle.to_tensor(b, place=paddle.CPUPlace())
    results["paddle"] = flops / median_time(lambda: paddle.matmul(pa, pb).numpy(), 5, 2) / 1e9
    return results


def measure_gpu_peak() -> dict:
    """GFLOP/s of a 8192^3 float32 matmul on the current GPU (TF32 off when NVIDIA_TF32_OVERRIDE=0 is set before
    the run, as the benchmarks do), timed between device synchronisations."""
    import paddle

    n = 8192
    a = paddle.rand([n, n], dtype="float32")
    b = paddle.rand([n, n], dtype="float32")

    def mm():
        paddle.matmul(a, b)
        paddle.device.synchronize()

    return {"paddle gpu": 2.0 * n ** 3 / median_time(mm, 7, 2) / 1e9}


def gpu_name() -> str:
    import paddle

    return paddle.device.cuda.get_device_name() if paddle.device.cuda.device_count() else "no GPU"
