"""Turning a dygraph network into a static program: `save_program` (to_static + jit.save into a folder) and
`run_paddle2onnx` (that program -> ONNX). `ppir.export` writes deployable exports with them; `compiled_folder`
compiles a model into a private temporary folder so that `backends.make_backend("paddle" | "onnxruntime", model)`
can build a predictor or session in-process, from the weights alone (predict, eval, the Python API).

This module lives in `ppir.infer` (not `ppir.export`) because backends need it and infer must never import export.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Iterator, Sequence

from ..paths import atomic_target, output_file_problem
from .deploy_info import (INPUT_NAME, MODEL_FILENAME, ONNX_DIGEST_KEY, ONNX_FILENAME, PARAMS_FILENAME, ExportError,
                          program_digest)

TEMP_PREFIX = "ppir-compiled-"  # the private folders of compiled_folder (tests look for leftovers by it)


def save_program(model, folder: str, spec_shape: Sequence) -> None:
    """to_static(full_graph=True) of `FinalOutput(model)` for inputs of `spec_shape` (None = dynamic) and
    jit.save into `folder` (inference.json + .pdiparams). ExportError (one line, with the cause) when it fails.
    full_graph: the SOT mode fails on HINet's Conv2DTranspose with dynamic shapes in Paddle 3.3.1."""
    from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
    import paddle  # paddle and the modules built on it load only when a model is compiled
    from paddle.static import InputSpec

    from .dygraph import FinalOutput

    net = FinalOutput(model)
    net.eval()
    static = paddle.jit.to_static(net, input_spec=[InputSpec(list(spec_shape), "float32", INPUT_NAME)],
                                  full_graph=True)
    try:
        paddle.jit.save(static, os.path.join(folder, os.path.splitext(MODEL_FILENAME)[0]))
    except Exception as e:  # noqa: BLE001 - a failing export is reported as one line, with its cause
        raise ExportError(f"paddle.jit.save failed for {type(model).__name__}: {type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from e
    for name in (MODEL_FILENAME, PARAMS_FILENAME):
        if not os.path.isfile(os.path.join(folder, name)):
            raise ExportError(f"paddle.jit.save did not write {os.path.join(folder, name)} "
                              f"(is FLAGS_enable_pir_api switched off?)")


def check_save_file(save_file: str) -> None:
    """ExportError (one line, naming the path) unless the ONNX file can be written."""
    problem = output_file_problem(save_file)
    if problem:
        raise ExportError(f"--save_file: {problem}")


def run_paddle2onnx(model_dir: str, save_file: str, opset_version: int = 13, model_filename: str = MODEL_FILENAME,
                    params_filename: str = PARAMS_FILENAME, optimize_tool: str = "onnxoptimizer",
                    timeout: int = 1800, in_process: bool = False) -> None:
    """paddle2onnx with one-line errors. It runs in a child process by default, because it aborts the whole
    process on some failures; `in_process` saves the child's start-up (about 2 s) where that risk is acceptable."""
    for name in (model_filename, params_filename):
        if not os.path.isfile(os.path.join(model_dir, name)):
            raise ExportError(f"{os.path.join(model_dir, name)}: no such file; export the model first "
                              f"(tools/export_model.py)")
    check_save_file(save_file)
    # paddle2onnx writes a temporary file beside save_file, renamed over it only once it is complete: an earlier
    # save_file stays whole until then (and after a failure or a kill)
    with atomic_target(save_file) as tmp:
        _convert(model_dir, tmp, opset_version, model_filename, params_filename, optimize_tool, timeout, in_process)
        stamp_onnx(tmp, program_digest(model_dir, model_filename, params_filename))


def stamp_onnx(onnx_path: str, digest: str) -> None:
    """Record the digest of the program an ONNX model was converted from in its metadata (`ONNX_DIGEST_KEY`;
    the ONNX Runtime backend compares it with inference.yml's program.digest). Rewrites the file in place."""
    import onnx

    try:
        model = onnx.load(onnx_path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - DecodeError, OSError: a file paddle2onnx did not finish
        raise ExportError(f"{onnx_path}: not a readable ONNX model ({type(e).__name__})") from None
    kept = [p for p in model.metadata_props if p.key != ONNX_DIGEST_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=ONNX_DIGEST_KEY, value=digest)
    onnx.save(model, onnx_path)


def _convert(model_dir, save_file, opset_version, model_filename, params_filename, optimize_tool, timeout,
             in_process) -> None:
    if in_process:
        import paddle2onnx

        try:
            paddle2onnx.export(os.path.join(model_dir, model_filename), os.path.join(model_dir, params_filename),
                               save_file=save_file, opset_version=opset_version, enable_onnx_checker=True,
                               optimize_tool=optimize_tool)
        except Exception as e:  # noqa: BLE001
            why = (str(e).strip().splitlines() or [type(e).__name__])[-1]
            raise ExportError(f"paddle2onnx failed on {model_dir}: {why[:300]}") from None
        if not os.path.isfile(save_file) or os.path.getsize(save_file) == 0:
            raise ExportError(f"paddle2onnx failed on {model_dir}: it wrote no {save_file}")
        return
    args = ["--model_dir", model_dir, "--model_filename", model_filename, "--params_filename", params_filename,
            "--save_file", save_file, "--opset_version", str(opset_version), "--enable_onnx_checker", "True",
            "--optimize_tool", optimize_tool]
    code = "import sys; from paddle2onnx.command import main; sys.argv = ['paddle2onnx'] + sys.argv[1:]; main()"
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ExportError(f"paddle2onnx did not finish within {timeout} s") from None
    if proc.returncode != 0 or not os.path.isfile(save_file) or os.path.getsize(save_file) == 0:
        lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower() and "ccache" not in ln]
        why = (errors or lines or ["no output"])[-1]
        status = f"exit code {proc.returncode}" if proc.returncode >= 0 else f"killed by signal {-proc.returncode}"
        raise ExportError(f"paddle2onnx failed on {model_dir} ({status}): {why[:300]}")


@contextlib.contextmanager
def compiled_folder(model, info, onnx: bool = False) -> Iterator[str]:
    """A private temporary folder holding `model` as a static program for `info.input_shape` (plus model.onnx
    with `onnx`), removed when the block ends: predictors and sessions read their files when they are created,
    so nothing stays on disk while they run, nor after the process (even one that fails half-way)."""
    folder = tempfile.mkdtemp(prefix=TEMP_PREFIX)
    try:
        save_program(model, folder, info.input_shape or [None, info.in_channels, None, None])
        if onnx:  # in a child process: paddle2onnx aborts its process on some failures
            run_paddle2onnx(folder, os.path.join(folder, ONNX_FILENAME))
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
