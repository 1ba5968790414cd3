import fcntl
import glob
import json
import os
import sys

# Before anything imports paddle: `import paddle` sets OMP_NUM_THREADS=1 in os.environ when it is unset, and a test
# module that imports paddle before ppir would then run this process, and every tool it starts, on one thread.
# Under pytest-xdist (tests/run_all.sh runs one worker per core) each worker gets its share of the cores, so the
# workers' math libraries never oversubscribe the machine; run alone, a process gets them all.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # on sys.path: pyproject's pytest pythonpath

# Outputs of the official PyTorch models (tests/fixtures/golden/README.md). They ship with the repo, so every
# clone checks parity; PPIR_GOLDEN_DIR points the parity tests at another folder of files in the same format.
GOLDEN_DIR = os.environ.get("PPIR_GOLDEN_DIR") or os.path.join(REPO, "tests", "fixtures", "golden")


def golden_files():
    return sorted(glob.glob(os.path.join(GOLDEN_DIR, "*.npz")))


def golden_meta(path):
    with np.load(path, allow_pickle=False) as d:
        return json.loads(str(d["meta/json"]))


def golden_file(name):
    """Path of one golden file; the repo ships them, so a missing one is a broken checkout, not a skip."""
    path = os.path.join(GOLDEN_DIR, name)
    if not os.path.isfile(path):
        pytest.fail(f"golden fixture {path} is missing (tests/fixtures/golden/README.md says how it is made)")
    return path


@pytest.fixture(scope="session")
def require_golden():
    if not golden_files():
        pytest.fail(f"no golden fixtures in {GOLDEN_DIR} (tests/fixtures/golden/README.md)")


def tiny_hinet():
    """HINet at width 8 in eval mode, with the official model's (PyTorch-initialised) weights from the golden file."""
    import ppir

    model = ppir.build_model(os.path.join(REPO, "configs", "hinet_sidd_0.5x.yml"), ["model.wf=8"])
    ppir.load_weights(model, golden_file("hinet_wf8_perturbed.npz"))
    model.eval()
    return model


def export_tiny_hinet(folder, input_shape=None, opset_version=13):
    """`tiny_hinet()` exported into `folder` (Paddle program + inference.yml) with its model.onnx."""
    from ppir.export import export_model, run_paddle2onnx

    export_model(tiny_hinet(), folder, input_shape=input_shape)
    # in this process: the child paddle2onnx runs in by default (it can abort its process) costs ~2.5 s, and this
    # known-good network does not abort it
    run_paddle2onnx(folder, os.path.join(folder, "model.onnx"), opset_version=opset_version, in_process=True)
    return folder


def folder_digest(folder):
    """{relative path: sha256} of every file under `folder`."""
    import hashlib

    digest = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digest[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return digest


def built_once(tmp_path_factory, name, build):
    """`build(folder)` run once per test run, whatever the number of pytest-xdist workers: session fixtures are
    per process, so each worker would otherwise repeat the work. The first worker to ask builds in the run's
    shared temporary root under a lock; the others wait for it and reuse the folder. Returns the folder."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's root, shared by the workers' own basetemps
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if build raises
        if not done.exists():
            if folder.exists():  # a failed build's leftovers: start clean
                import shutil

                shutil.rmtree(folder)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_hinet_export(tmp_path_factory):
    """`export_tiny_hinet` into one folder for the whole test run (dynamic shape, opset 13, with model.onnx):
    exporting and converting cost about 9 s, once instead of once per module. Read-only: a test that needs to
    change an export copies it first; a test that changes this one fails the run at its end."""
    folder = str(built_once(tmp_path_factory, "tiny_hinet_export", lambda f: export_tiny_hinet(str(f))))
    before = folder_digest(folder)
    yield folder
    assert folder_digest(folder) == before, f"a test changed the shared export {folder}; copy it before changing it"


@pytest.fixture(scope="session")
def default_quick_start(tmp_path_factory):
    """The README's first command, `python tools/quickstart.py` with its defaults, run once per test run in a fresh
    interpreter from an empty folder (so its default --output lands there): (output folder, console output).
    Shared by the README-commands test and the quick-start tests; a few CPU minutes, so once per test run (their
    tests share an xdist_group, so one worker runs them and none waits for another's build)."""
    import subprocess

    def run(cwd):
        proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "quickstart.py")], capture_output=True,
                              text=True, cwd=cwd, timeout=1200, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        (cwd / "console.txt").write_text(proc.stdout)

    cwd = built_once(tmp_path_factory, "quickstart_default", run)
    return cwd / "output" / "quickstart" / "mirnet", (cwd / "console.txt").read_text()


def run_tool_here(name, *args, cwd=None, timeout=None):  # timeout: run_tool's signature; unused here
    """tools/<name>.py run in this process as its own __main__ (runpy: its command line, its exit code), with what
    it prints captured: a subprocess.CompletedProcess like run_tool's, without a fresh interpreter's Paddle import
    (~4 s). For checks of what a tool does with its arguments; run_tool where a fresh process is the point."""
    import contextlib
    import io
    import runpy
    import subprocess

    script = os.path.join(REPO, "tools", name + ".py")
    argv = [script, *map(str, args)]
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd, saved_path = sys.argv, os.getcwd(), list(sys.path)
    code = 0
    try:
        sys.argv = argv
        os.chdir(cwd or REPO)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
            err.write(e.code + "\n")
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        os.chdir(saved_cwd)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def run_tool(name, *args, cwd=None, timeout=600):
    """Run tools/<name>.py in a fresh interpreter, as a user would."""
    import subprocess

    cmd = [sys.executable, os.path.join(REPO, "tools", name + ".py"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd or REPO, timeout=timeout)


# The three networks at reduced widths, each with its paper loss: a few CPU seconds per training step.
TINY_NETWORKS = {
    "hinet": ({"type": "HINet", "wf": 8}, {"type": "PSNRLoss"}),
    "mirnet": ({"type": "MIRNet", "n_feat": 8, "n_RRG": 1, "n_MSRB": 1}, {"type": "CharbonnierLoss"}),
    "mimo_unetplus": ({"type": "MIMOUNetPlus", "num_res": 1, "base_channel": 8}, {"type": "MultiScaleFFTLoss"}),
}


def tiny_train_config(net, out_dir, steps, **train):
    """A loaded config training TINY_NETWORKS[net] for `steps` on 32x32 synthetic noise patches (batch 2, a
    checkpoint half-way and at the end, one log line per step, no validation); `train` overrides train:."""
    import ppir

    model, loss = TINY_NETWORKS[net]
    return ppir.load_config({
        "model": dict(model),
        "datasets": {"train": {"type": "SyntheticDataset", "degradation": "gaussian_noise",
                               "images": ["astronaut", "coffee"], "size": [64, 64], "num_samples": 8, "seed": 1,
                               "patch_size": 32, "use_flip": True}},
        "loss": dict(loss),
        "optimizer": {"type": "Adam", "lr": 1.0e-3},
        "train": {"iters": steps, "batch_size": 2, "num_workers": 0, "seed": 3, "log_interval": 1,
                  "output_dir": str(out_dir), "val_interval": 0, "save_interval": steps // 2, "keep_last": 0,
                  **train},
    })


def lr_at(sched, t):
    """The learning rate a ppir scheduler gives at step `t`, read through its public seek/get_lr and left where
    it was (the schedule tests compare every step against an independent reference)."""
    here = sched.last_epoch
    sched.seek(t)
    lr = sched.get_lr()
    sched.seek(here)
    return lr


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks (it turns them into the scheduling groups)
def pytest_collection_modifyitems(config, items):
    """Under `pytest -n N --dist loadgroup` (tests/run_all.sh), each test file runs whole on one worker unless its
    tests name a group of their own: module-scoped fixtures (a Ray cluster, servers, exports) are set up once, not
    once per worker that happens to get one of the file's tests."""
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
