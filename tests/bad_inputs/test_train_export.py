"""Bad inputs to training, evaluation, export and the ONNX Runtime runner: each gets one line, the fitting exit code,
no traceback, and no file lost or half-written.

The tools run in this process through `ppir.cli.run` (what `python tools/<name>.py` does after start-up), so the
matrix stays fast; an exception that is not a ppir error escapes `run` and fails the test, as a traceback would
fail a user. The ONNX Runtime runner runs as a subprocess, as a user starts it. The network is a HINet of width 4
and depth 2 (inputs: multiples of 2, at least 4) trained for 3 steps on 16x16 patches.
"""
import errno
import importlib.util
import json
import os
import shutil
import sys

import numpy as np
import pytest
import yaml

from bad_input_checks import one_error, snapshot
from conftest import REPO, golden_file

import ppir  # noqa: E402  (sets OMP threads before paddle)
from ppir.cli import run  # noqa: E402
from ppir.errors import ConfigError  # noqa: E402
from ppir.export import ExportError  # noqa: E402

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
root_ignores_permissions = pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders")


# ------------------------------------------------------------------------------------------------- helpers
def tiny_config(tmp_path, name="run", **train):
    cfg = {
        "model": {"type": "HINet", "wf": 4, "depth": 2},
        "datasets": {
            "train": {"type": "SyntheticDataset", "degradation": "gaussian_noise", "images": ["astronaut"],
                      "size": [32, 32], "num_samples": 4, "seed": 1, "patch_size": 16},
            "val": {"type": "SyntheticDataset", "degradation": "gaussian_noise", "images": ["chelsea"],
                    "size": [16, 16], "num_samples": 1, "seed": 2},
        },
        "loss": {"type": "L1Loss"},
        "optimizer": {"type": "Adam", "lr": 1.0e-3},
        "metrics": [{"type": "PSNR"}],
        "train": {"iters": 3, "batch_size": 2, "num_workers": 0, "seed": 0, "log_interval": 1,
                  "output_dir": str(tmp_path / name), "val_interval": 1, "save_interval": 1, "keep_last": 0,
                  **train},
    }
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def tool(capsys, name, *args):
    """tools/<name>.py run in this process: (exit code, stderr)."""
    spec = importlib.util.spec_from_file_location(f"ppir_tool_{name}", os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    capsys.readouterr()
    code = run(module.main, [str(a) for a in args])
    return code, capsys.readouterr().err


def leftovers(folder):
    """Temporary files or folders a write left behind."""
    return [os.path.join(root, n) for root, dirs, files in os.walk(folder) for n in dirs + files if ".tmp" in n]


def iterations(run_dir):
    return [json.loads(line)["iter"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 3-step run (checkpoints 1, 2, 3; a validation after every step) to copy and damage."""
    base = tmp_path_factory.mktemp("trained")
    from ppir.engine.trainer import Trainer

    Trainer(ppir.load_config(tiny_config(base)), progress=False).train()
    return base / "run"


def copy_run(trained, tmp_path, **train):
    """A config for `tmp_path/run` and a copy of the trained run there."""
    shutil.copytree(trained, tmp_path / "run", symlinks=True)
    return tiny_config(tmp_path, **train)


@pytest.fixture(scope="module")
def export_dir(tiny_hinet_export):
    return tiny_hinet_export


# ------------------------------------------------------------------------------------------------ training
def test_train_patch_size_the_network_cannot_take_is_refused_up_front(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    code, err = tool(capsys, "train", "-c", cfg, "--no-progress", "-o", "datasets.train.patch_size=7")
    line = one_error(err)
    assert code == 2
    assert "datasets.train.patch_size=7" in line and "HINet" in line and "multiples of 2" in line
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_train_empty_config_says_it_is_empty(tmp_path, capsys):
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    code, err = tool(capsys, "train", "-c", empty)
    line = one_error(err)
    assert code == 2 and "the config is empty" in line and "model, datasets, loss" in line


def test_train_output_dir_under_a_file_is_refused_up_front(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    cfg = tiny_config(tmp_path, output_dir=str(blocker / "run"))
    code, err = tool(capsys, "train", "-c", cfg, "--no-progress")
    line = one_error(err)
    assert code == 2 and "train.output_dir" in line and str(blocker) in line and "is a file" in line
    assert blocker.read_text() == "keep me"


@root_ignores_permissions
def test_train_read_only_output_dir_is_refused_up_front(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, err = tool(capsys, "train", "-c", tiny_config(tmp_path, output_dir=str(folder / "run")))
    finally:
        folder.chmod(0o755)
    assert code == 2 and "not writable" in one_error(err)


def test_read_only_folders_are_refused_up_front_simulated(tmp_path, monkeypatch):
    """As root, os.access is what stands for a read-only folder: deny writing into `ro` and ask every check."""
    from ppir.engine.trainer import Trainer
    from ppir.export import check_save_dir, check_save_file

    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.path.abspath(p) == str(ro)
                        else real_access(p, mode, **kw))
    with pytest.raises(ConfigError, match=f"train.output_dir: cannot create the folder {ro}/run: {ro} is not "
                                          f"writable"):
        Trainer(ppir.load_config(tiny_config(tmp_path, output_dir=str(ro / "run"))), progress=False)
    with pytest.raises(ExportError, match=f"--save-dir: the folder {ro} is not writable"):
        check_save_dir(str(ro))
    with pytest.raises(ExportError, match=f"--save_file: cannot write {ro}/m.onnx: the folder {ro} is not writable"):
        check_save_file(str(ro / "m.onnx"))


def _killed_before_checkpoint_3(run_dir):
    """What a SIGKILL between validation 3 and the rename of checkpoint 3 leaves: metrics.jsonl has the record of
    iteration 3, `latest` is checkpoint 2, and checkpoint 3 is still a temporary folder. Resume with no path."""
    os.replace(run_dir / "checkpoints" / "iter_00000003", run_dir / "checkpoints" / ".tmp-iter_00000003-x")
    os.remove(run_dir / "latest")
    os.symlink(os.path.join("checkpoints", "iter_00000002"), run_dir / "latest")
    return []


def _older_checkpoint(run_dir):
    """Resuming a finished run from its checkpoint 2 (3 steps, a checkpoint after each): step 3 is replayed."""
    return [run_dir / "checkpoints" / "iter_00000002"]


@pytest.mark.parametrize("interrupt", [_killed_before_checkpoint_3, _older_checkpoint], ids=["killed", "older"])
def test_resume_keeps_one_metrics_record_per_validation(trained, tmp_path, capsys, interrupt):
    cfg = copy_run(trained, tmp_path)
    run_dir = tmp_path / "run"
    resume_from = interrupt(run_dir)
    assert iterations(run_dir) == [1, 2, 3]
    code, err = tool(capsys, "train", "-c", cfg, "--no-progress", "--resume", *resume_from)
    assert code == 0, err
    assert iterations(run_dir) == [1, 2, 3]  # iteration 3 validated again, recorded once
    assert "at iteration 2" in err and "dropped 1 record(s) after iteration 2" in err
    assert leftovers(run_dir / "checkpoints") == []


def test_resume_falls_back_when_latest_points_to_a_deleted_folder(trained, tmp_path, capsys):
    cfg = copy_run(trained, tmp_path, iters=4)
    run_dir = tmp_path / "run"
    shutil.rmtree(run_dir / "checkpoints" / "iter_00000003")
    code, err = tool(capsys, "train", "-c", cfg, "--no-progress", "--resume")
    assert code == 0, err
    assert "no longer exists" in err and f"newest complete checkpoint {run_dir}/checkpoints/iter_00000002" in err
    assert "at iteration 2" in err
    assert json.loads((run_dir / "latest" / "state.json").read_text())["iteration"] == 4


def test_resume_without_a_completed_checkpoint_says_so(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / ".tmp-iter_00000001-x").mkdir(parents=True)  # killed during the first save
    (run_dir / "train.log").write_text("started\n")
    code, err = tool(capsys, "train", "-c", cfg, "--no-progress", "--resume")
    line = one_error(err)
    assert code == 2 and "nothing to resume" in line and "holds no complete checkpoint" in line
    assert "without --resume" in line
    assert (run_dir / "train.log").read_text() == "started\n"


def test_resume_from_an_incomplete_checkpoint_names_the_newest_complete_one(trained, tmp_path, capsys):
    cfg = copy_run(trained, tmp_path)
    run_dir = tmp_path / "run"
    os.remove(run_dir / "checkpoints" / "iter_00000003" / "state.json")
    before = snapshot(run_dir)
    code, err = tool(capsys, "train", "-c", cfg, "--no-progress", "--resume", run_dir / "checkpoints" / "iter_00000003")
    line = one_error(err)
    assert code == 2 and "state.json is missing" in line
    assert f"newest complete checkpoint of that run is {run_dir}/checkpoints/iter_00000002" in line
    assert snapshot(run_dir) == before


def test_resume_with_a_different_length_warns_like_batch_size_and_seed(trained, tmp_path, capsys):
    cfg = copy_run(trained, tmp_path, iters=4)
    code, err = tool(capsys, "train", "-c", cfg, "--no-progress", "--resume")
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("warning:") and "iterations long" in line]
    assert len(warning) == 1 and "3 iterations" in warning[0] and "now 4" in warning[0]
    assert "learning-rate schedule" in warning[0]
    assert warning[0] in (tmp_path / "run" / "train.log").read_text()


def _remove_run_dir(run_dir, monkeypatch):
    shutil.rmtree(run_dir)


def _remove_run_dir_during_checkpoint(run_dir, monkeypatch):
    """The folder disappears while checkpoint 2 is being written."""
    import paddle

    real_save = paddle.save

    def save_after_removal(obj, path, *args, **kwargs):
        shutil.rmtree(run_dir, ignore_errors=True)
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(paddle, "save", save_after_removal)


def _checkpoint_write_fails(run_dir, monkeypatch):
    """The disk turns read-only while checkpoint 2 is written: paddle.save writes a few bytes, then fails."""
    import paddle

    def failing_save(obj, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half")
        raise OSError(errno.EROFS, "Read-only file system", path)

    monkeypatch.setattr(paddle, "save", failing_save)


@pytest.mark.parametrize("damage", [_remove_run_dir, _remove_run_dir_during_checkpoint, _checkpoint_write_fails],
                         ids=["folder removed", "folder removed while checkpointing", "checkpoint write fails"])
def test_outputs_becoming_unwritable_mid_training_end_the_run_with_one_line(tmp_path, capsys, monkeypatch, damage):
    from ppir.engine.logging import TrainLogger

    run_dir = tmp_path / "run"
    step = TrainLogger.step

    def step_then_damage(self, iteration, *args, **kwargs):
        step(self, iteration, *args, **kwargs)
        if iteration == 2:  # after checkpoint 1, before validation and checkpoint 2
            damage(run_dir, monkeypatch)

    monkeypatch.setattr(TrainLogger, "step", step_then_damage)
    code, err = tool(capsys, "train", "-c", tiny_config(tmp_path), "--no-progress")
    line = one_error(err)
    assert code == 1 and "stopped after iteration 2" in line
    if damage is _remove_run_dir:
        assert f"the output folder {run_dir} was removed" in line
    else:
        assert "cannot write" in line
    if damage is _checkpoint_write_fails:
        assert "Read-only file system" in line
        assert line in (run_dir / "train.log").read_text()  # the log is still writable: the error is in it
        assert sorted(os.listdir(run_dir / "checkpoints")) == ["iter_00000001"]  # no half-written checkpoint
        assert os.path.realpath(run_dir / "latest").endswith("iter_00000001")
        assert leftovers(run_dir) == []


# ------------------------------------------------------------------------------------------- evaluation
@pytest.fixture
def eval_weights(tmp_path):
    cfg = tiny_config(tmp_path)
    path = tmp_path / "w.pdparams"
    ppir.save_weights(ppir.build_model(ppir.load_config(cfg)), str(path))
    return cfg, path


@pytest.mark.parametrize("flag", ["--output", "--json"])
def test_eval_unwritable_results_path_is_refused_before_evaluating(eval_weights, tmp_path, capsys, flag):
    cfg, weights = eval_weights
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    code, err = tool(capsys, "eval", "-c", cfg, "--weights", weights, flag, blocker / "res.json")
    line = one_error(err)
    assert code == 2 and line.startswith(f"error: {flag}:") and str(blocker) in line and "is a file" in line
    assert "psnr" not in err.lower()  # refused before the evaluation ran
    assert blocker.read_text() == "keep me"


def test_eval_empty_config_says_it_is_empty(tmp_path, capsys):
    empty = tmp_path / "empty.yml"
    empty.write_text("# nothing yet\n")
    code, err = tool(capsys, "eval", "-c", empty, "--weights", tmp_path / "w.pdparams")
    assert code == 2 and "the config is empty" in one_error(err)


# ------------------------------------------------------------------------------------------------ export
def export_args(save_dir):
    return ["-c", os.path.join(REPO, "configs", "hinet_sidd_0.5x.yml"), "-o", "model.wf=8",
            "--weights", golden_file("hinet_wf8_perturbed.npz"), "--save-dir", save_dir]


def test_export_save_dir_under_a_file_is_refused_up_front(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    code, err = tool(capsys, "export_model", *export_args(blocker / "export"))
    line = one_error(err)
    assert code == 2 and line.startswith("error: --save-dir:") and str(blocker) in line
    assert blocker.read_text() == "keep me"


@root_ignores_permissions
def test_export_read_only_save_dir_is_refused_up_front(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, err = tool(capsys, "export_model", *export_args(folder / "export"))
    finally:
        folder.chmod(0o755)
    assert code == 2 and "not writable" in one_error(err)


def test_export_empty_config_says_it_is_empty(tmp_path, capsys):
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    code, err = tool(capsys, "export_model", "-c", empty, "--weights", "w.pdparams", "--save-dir", tmp_path / "e")
    assert code == 2 and "the config is empty" in one_error(err)
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("where", ["under a file", "a folder"])
def test_export_onnx_unwritable_save_file_names_the_path(export_dir, tmp_path, capsys, where):
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    save_file = blocker / "m.onnx" if where == "under a file" else tmp_path
    before = snapshot(export_dir)
    code, err = tool(capsys, "export_onnx", "--model_dir", export_dir, "--save_file", save_file)
    line = one_error(err)
    assert code == 2 and line.startswith("error: --save_file:") and str(save_file) in line
    assert "paddle2onnx" not in line
    assert blocker.read_text() == "keep me" and snapshot(export_dir) == before


CORRUPT_ONNX = {"garbage": b"\x0a\xff\xff\xff\xff\x0fnot an onnx model",
                "truncated": b"\x08\x07\x12\x07paddle2\x1a\x05"}


@pytest.mark.parametrize("kind", sorted(CORRUPT_ONNX))
def test_export_onnx_check_only_on_a_corrupt_model_is_one_line(export_dir, tmp_path, capsys, kind):
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(CORRUPT_ONNX[kind])
    code, err = tool(capsys, "export_onnx", "--model_dir", export_dir, "--save_file", onnx_file, "--check_only")
    line = one_error(err)
    assert code == 2 and str(onnx_file) in line and "not a readable ONNX model" in line
    assert onnx_file.read_bytes() == CORRUPT_ONNX[kind]  # not renamed, not rewritten


# ------------------------------------------------------------------------------- ONNX Runtime runner and server
def corrupt_deploy_dir(export_dir, tmp_path, kind):
    model_dir = tmp_path / "deploy"
    model_dir.mkdir()
    shutil.copy(os.path.join(export_dir, "inference.yml"), model_dir)
    (model_dir / "model.onnx").write_bytes(CORRUPT_ONNX[kind])
    return model_dir


def test_onnxruntime_runner_with_a_corrupt_model_exits_2_with_one_line(export_dir, tmp_path):
    import subprocess

    import cv2

    kind = "truncated"  # both kinds go through the same backend code (test_export_onnx_check_only_* has both)
    model_dir = corrupt_deploy_dir(export_dir, tmp_path, kind)
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((16, 16, 3), np.uint8))
    cmd = [sys.executable, os.path.join(REPO, "deploy", "onnxruntime", "infer.py"), "--model_dir", str(model_dir),
           "--image_dir", str(images), "--save_dir", str(tmp_path / "out")]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    line = one_error(r.stderr)
    assert r.returncode == 2, r.stderr[-2000:]
    assert str(model_dir / "model.onnx") in line and "not a readable ONNX model" in line
    assert (model_dir / "model.onnx").read_bytes() == CORRUPT_ONNX[kind]
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_onnxruntime_server_with_a_corrupt_model_exits_2_with_one_line(export_dir, tmp_path):
    import subprocess

    model_dir = corrupt_deploy_dir(export_dir, tmp_path, "garbage")
    cmd = [sys.executable, os.path.join(REPO, "deploy", "serving", "server.py"), "--backend", "onnxruntime",
           "--model_dir", str(model_dir), "--port", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    line = one_error(r.stderr)
    assert r.returncode == 2, r.stderr[-2000:]
    assert str(model_dir / "model.onnx") in line and "not a readable ONNX model" in line
