"""Keep the process's CPU math-library threads as they were across a Paddle Inference run.

Paddle Inference's predictor sets the math library's thread count (MKL and OpenMP, process-wide for the calling
thread) to the predictor's `cpu_math_library_num_threads` when a run starts, and back to **1** when it ends
(AnalysisPredictor::Run: "to avoid thread conflict when integrating it into deployment service"). A process that
runs dygraph after a predictor -- training after a validation on the compiled path, `predict` falling back -- then
does every MKL gemm and OpenMP loop on one thread: half the speed on 2 cores, and other float32 bits wherever
MKL's result depends on the thread split (it does on AMD EPYC, not on the Intel Xeon the validation test was
written on: weights off by 7e-9 after ten steps). `kept_math_threads` puts the counts back after each run.

The counts are read and set through the MKL and OpenMP libraries the Paddle CPU wheel ships (`paddle/libs`),
the very copies Paddle calls; where they cannot be loaded (another build), the fallback sets both through Paddle
to the count MKL and OpenMP start with: MKL_NUM_THREADS, else OMP_NUM_THREADS, else the CPU count.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Iterator

_LIBS: tuple | None = None  # (mkl, omp) ctypes handles, or (None, None) when not loadable


def _libraries() -> tuple:
    global _LIBS
    if _LIBS is None:
        from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
        import paddle

        folder = os.path.join(os.path.dirname(paddle.__file__), "libs")
        try:
            # dlopen of the path Paddle loaded returns Paddle's own handle: the same thread settings
            mkl = ctypes.CDLL(os.path.join(folder, "libmklml_intel.so"))
            omp = ctypes.CDLL(os.path.join(folder, "libiomp5.so"))
            mkl.MKL_Get_Max_Threads, mkl.MKL_Set_Num_Threads  # noqa: B018 - both must exist
            omp.omp_get_max_threads, omp.omp_set_num_threads  # noqa: B018
            _LIBS = (mkl, omp)
        except (OSError, AttributeError):
            _LIBS = (None, None)
    return _LIBS


def math_threads() -> tuple[int, int] | None:
    """(MKL's, OpenMP's) thread counts for the calling thread, or None where the libraries cannot be read."""
    mkl, omp = _libraries()
    if mkl is None:
        return None
    return int(mkl.MKL_Get_Max_Threads()), int(omp.omp_get_max_threads())


def _starting_threads() -> int:
    for name in ("MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def _set(counts: tuple[int, int] | None) -> None:
    mkl, omp = _libraries()
    if counts is not None and mkl is not None:
        mkl.MKL_Set_Num_Threads(ctypes.c_int(counts[0]))
        omp.omp_set_num_threads(ctypes.c_int(counts[1]))
        return
    from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
    from paddle.base import core

    core.set_num_threads(_starting_threads())


@contextlib.contextmanager
def kept_math_threads() -> Iterator[None]:
    """Run the body (a predictor run) and put the math library's thread counts back as they were before it."""
    before = math_threads()
    try:
        yield
    finally:
        _set(before)
