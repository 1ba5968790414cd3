"""Issue 25, files never lost or swapped: export-onnx replaces model.onnx only by a checked model and never writes
over the export's own files; a model.onnx left from an earlier export is refused by the ONNX Runtime runners; a
run folder holds one run (a second `train` without --resume is refused) and one training at a time (a lock)."""
import os
import shutil

import numpy as np
import paddle
import pytest

from bad_input_checks import one_error, snapshot
from conftest import tiny_hinet
from test_train_export import tiny_config, tool

import ppir  # noqa: E402
from ppir.export import ExportError, export_model  # noqa: E402
from ppir.infer.backends import BackendError, make_backend  # noqa: E402
from ppir.infer.deploy_info import read_deploy_info  # noqa: E402


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """An export of the tiny HINet with its checked model.onnx (export-onnx in this process)."""
    from ppir.cli import run
    from ppir.commands import export_onnx

    folder = str(tmp_path_factory.mktemp("converted"))
    export_model(tiny_hinet(), folder)
    assert run(export_onnx.main, ["--model_dir", folder]) == 0
    return folder


def _copy(folder, tmp_path):
    dst = tmp_path / "export"
    shutil.copytree(folder, dst)
    return dst


# ------------------------------------------------------------------------------------ case 1: killed conversion
@pytest.mark.parametrize("failure", [ExportError("paddle2onnx failed (simulated)"), KeyboardInterrupt()],
                         ids=["conversion fails", "interrupted"])
def test_export_onnx_keeps_the_old_model_until_the_new_one_is_complete(converted, tmp_path, capsys, monkeypatch,
                                                                        failure):
    import ppir.infer.compile as compile_mod

    export = _copy(converted, tmp_path)
    before = snapshot(export)
    seen = {}

    def half_then_fail(model_dir, save_file, *args):
        seen["old kept during conversion"] = (export / "model.onnx").read_bytes() == before["model.onnx"]
        with open(save_file, "wb") as f:
            f.write(b"half an onnx model")
        raise failure

    monkeypatch.setattr(compile_mod, "_convert", half_then_fail)
    if isinstance(failure, KeyboardInterrupt):
        from ppir.commands import export_onnx

        with pytest.raises(KeyboardInterrupt):
            export_onnx.main(["--model_dir", str(export)])
    else:
        code, err = tool(capsys, "export_onnx", "--model_dir", export)
        assert code == 2 and "simulated" in one_error(err)
    assert seen == {"old kept during conversion": True}  # never deleted before converting
    assert snapshot(export) == before  # no temporary left, model.onnx byte for byte the old one


# ------------------------------------------------------------------------------ case 2: --save_file = own file
@pytest.mark.parametrize("name", ["inference.pdiparams", "inference.json", "inference.yml"])
def test_export_onnx_refuses_to_write_over_the_exports_own_files(converted, tmp_path, capsys, name):
    export = _copy(converted, tmp_path)
    before = snapshot(export)
    code, err = tool(capsys, "export_onnx", "--model_dir", export, "--save_file", export / name)
    line = one_error(err)
    assert code == 2
    assert line == (f"error: --save_file: {export / name} is the export's own {name}; converting would overwrite "
                    f"it. Name an ONNX file, e.g. {export / 'model.onnx'}")
    assert snapshot(export) == before


def test_export_onnx_refuses_a_link_to_the_exports_weights(converted, tmp_path, capsys):
    export = _copy(converted, tmp_path)
    link = tmp_path / "weights.onnx"
    os.symlink(export / "inference.pdiparams", link)
    before = snapshot(export)
    code, err = tool(capsys, "export_onnx", "--model_dir", export, "--save_file", link)
    assert code == 2 and "is the export's own inference.pdiparams" in one_error(err)
    assert snapshot(export) == before


# ------------------------------------------------------------------------ case 5: a stale model.onnx is refused
def test_reexport_makes_the_old_model_onnx_refused_until_converted_again(converted, tmp_path, capsys):
    export = _copy(converted, tmp_path)
    old_onnx = (export / "model.onnx").read_bytes()
    other = tiny_hinet()
    paddle.seed(3)
    for p in other.parameters()[:4]:  # a different network: the old ONNX would give other pixels
        p.set_value(p + paddle.randn(p.shape) * 0.1)
    export_model(other, str(export))
    info = read_deploy_info(str(export))
    assert (export / "model.onnx").read_bytes() == old_onnx  # the user's file is kept ...
    with pytest.raises(BackendError) as e:  # ... but infer-onnx / serve --backend onnxruntime refuse it
        make_backend("onnxruntime", str(export), info)
    assert str(e.value) == (f"{export / 'model.onnx'} was converted from another program (its digest is not "
                            f"inference.yml's program.digest): it is not the export's network in {export} (a "
                            f"model.onnx left from an earlier export?); convert it again: ppir export-onnx "
                            f"--model_dir {export}")
    code, err = tool(capsys, "export_onnx", "--model_dir", export)
    assert code == 0, err
    backend = make_backend("onnxruntime", str(export), info)
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    ref = make_backend("dygraph", other, info).run(x)
    assert np.abs(backend.run(x) - ref).max() < 1e-4


def test_export_model_says_when_it_leaves_a_stale_model_onnx(converted, tmp_path, capsys):
    from test_train_export import export_args

    export = _copy(converted, tmp_path)
    (export / "model.onnx").write_bytes(b"an ONNX model of some earlier program")
    code, err = tool(capsys, "export_model", *export_args(export), "--no-check")
    assert code == 0, err
    assert (f"note: {export / 'model.onnx'} was converted from an earlier program; ONNX Runtime refuses it until you "
            f"convert this export again: ppir export-onnx --model_dir {export}") in err
    assert (export / "model.onnx").read_bytes() == b"an ONNX model of some earlier program"
    assert [n for n in os.listdir(export) if n.startswith(".")] == []  # no staging folder left


def test_an_unstamped_model_onnx_in_the_export_folder_is_refused(converted, tmp_path):
    import onnx

    export = _copy(converted, tmp_path)
    model = onnx.load(str(export / "model.onnx"))
    del model.metadata_props[:]  # as paddle2onnx run by hand writes it
    onnx.save(model, str(export / "model.onnx"))
    with pytest.raises(BackendError, match="carries no program digest"):
        make_backend("onnxruntime", str(export), read_deploy_info(str(export)))
    # the same file passed by another name (a hand-made or quantized copy) is the user's explicit choice
    shutil.copy(export / "model.onnx", tmp_path / "mine.onnx")
    make_backend("onnxruntime", str(export), read_deploy_info(str(export)),
                 {"model_file": str(tmp_path / "mine.onnx")})


# ----------------------------------------------------------------------- case 3: a finished run is not taken over
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    from ppir.engine.trainer import Trainer

    base = tmp_path_factory.mktemp("finished")
    Trainer(ppir.load_config(tiny_config(base)), progress=False).train()
    return base / "run"


def test_train_into_a_finished_run_without_resume_is_refused(finished, tmp_path, capsys):
    shutil.copytree(finished, tmp_path / "run", symlinks=True)
    run_dir = tmp_path / "run"
    before = snapshot(run_dir)
    code, err = tool(capsys, "train", "-c", tiny_config(tmp_path), "--no-progress")
    line = one_error(err)
    assert code == 2
    assert line == (f"error: {tmp_path / 'run.yml'}: train.output_dir: {run_dir} already holds a run (checkpoints/, "
                    f"latest, best, latest.pdparams, metrics.jsonl); continue it with --resume, or train into another "
                    f"folder (-o train.output_dir=...)")
    assert snapshot(run_dir) == before  # best, latest, checkpoints and metrics.jsonl untouched
    # the fix the message names works: --resume continues it
    code, err = tool(capsys, "train", "-c", tiny_config(tmp_path, iters=4), "--no-progress", "--resume")
    assert code == 0, err


def test_train_into_a_folder_with_only_a_log_of_a_failed_start_is_allowed(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)  # an empty checkpoints/ and a log: no results to lose
    (run_dir / "train.log").write_text("error: the dataset was missing\n")
    code, err = tool(capsys, "train", "-c", tiny_config(tmp_path), "--no-progress")
    assert code == 0, err


# -------------------------------------------------------------------- case 6: one training per folder at a time
def test_a_second_training_into_a_folder_in_use_is_refused(tmp_path, capsys):
    from ppir.engine.run_folder import RunLock

    run_dir = tmp_path / "run"
    other = RunLock(str(run_dir))
    other.acquire()  # as a running training holds it (flock is per open file: this process counts as another)
    try:
        before = snapshot(run_dir)
        for args in ([], ["--resume"]):
            code, err = tool(capsys, "train", "-c", tiny_config(tmp_path), "--no-progress", *args)
            line = one_error(err)
            assert code == 2
            assert line.startswith(f"error: train.output_dir: {run_dir} is in use by another training (pid "
                                   f"{os.getpid()} on ")
            assert line.endswith("; wait for it to end, or train into another folder (-o train.output_dir=...)")
        assert snapshot(run_dir) == before
    finally:
        other.release()


def test_a_lock_left_by_a_killed_training_is_taken_over(tmp_path, capsys):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".ppir-train.lock").write_text(f"{int(dead.stdout)} on here, since earlier\n")
    code, err = tool(capsys, "train", "-c", tiny_config(tmp_path), "--no-progress")
    assert code == 0, err
    assert (run_dir / ".ppir-train.lock").read_text() == ""  # released at the end


def test_without_flock_the_pid_in_the_lock_decides(tmp_path, monkeypatch):
    import errno

    from ppir.engine import run_folder
    from ppir.errors import ConfigError

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(run_folder.fcntl, "flock", no_flock)
    lock_path = tmp_path / run_folder.LOCK_FILE
    lock_path.write_text("1 on here, since boot\n")  # pid 1 is alive
    with pytest.raises(ConfigError, match=r"is in use by another training \(pid 1 on here, since boot\)"):
        run_folder.RunLock(str(tmp_path)).check()
    lock_path.write_text("999999999 on here\n")  # no such pid
    lock = run_folder.RunLock(str(tmp_path))
    lock.acquire()
    assert lock_path.read_text().startswith(f"{os.getpid()} on ")
    lock.release()
