"""`paddle.DataParallel` on two GPUs equals one GPU with the same total batch, through the launcher users run
(`python -m paddle.distributed.launch --gpus 0,1 tools/train.py ...`).

The run, the measure (||w_2 - w_1|| / ||w_1 - w_0|| without the null directions of HIN) and its bound are those of
tests/engine/test_distributed.py, the same check on two CPU processes (gloo) that runs in CI; its docstring says why the
runs differ only by the order of float additions in the gradient all-reduce. On GPUs, NCCL's reduction order and
cuDNN's algorithms add float noise of the same kind, well inside the bound.
"""
import sys

import numpy as np
import pytest
import yaml

from engine.test_distributed import (CONFIG, WEIGHT_TOL, initial_weights_and_null_directions, one_process,
                              relative_difference, run_ok, train_cmd, weights)


def test_two_gpus_equal_one(device, tmp_path):
    from gpu.conftest import gpu_count

    if device == "cpu":
        pytest.skip("needs GPUs (suite forced onto the CPU; tests/engine/test_distributed.py is the CPU twin)")
    if gpu_count() < 2:
        pytest.skip(f"needs 2 GPUs, this machine has {gpu_count()}")
    cfg = tmp_path / "tiny_hinet.yml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    one, two = tmp_path / "one", tmp_path / "two"
    run_ok(one_process(cfg, one), cwd=tmp_path)
    run_ok([sys.executable, "-m", "paddle.distributed.launch", "--gpus", "0,1", "--log_dir", f"{two}_launch_log",
            *train_cmd(cfg, two)], cwd=tmp_path)
    start, keep = initial_weights_and_null_directions(cfg, tmp_path / "init")
    w1, w2 = weights(one), weights(two)
    diff = relative_difference(w2, w1, start, keep)
    assert diff < WEIGHT_TOL, f"two GPUs vs one: {diff:.2e}"
    assert all(np.isfinite(v).all() for v in w2.values())
