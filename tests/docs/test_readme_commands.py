"""Every command line in README.md / README_en.md is run here (or shown to be what CI / the TIPC chain runs).

The commands run in order, in a scratch workspace that links the repo's code and holds small stand-ins for
what a user would have. The scripts that only read, convert and write files (IN_PROCESS) run in this process,
as their own `__main__` (runpy) with the command line and working folder the README gives: each is a thin wrapper
over `ppir.cli.run`, so a fresh interpreter would add only Paddle's import time. Training, the distributed
launch, the server and `python tools/quickstart.py` (conftest's shared run) are real processes. The rest of the
stand-ins: a fake official HINet checkpoint, a tiny SIDD in the official layout, a fake MIMO-UNet
.pkl. Nothing is rewritten except what this file says: short training runs (`-o train.iters=...`), tiny widths
for the paper configs (full-size networks take minutes per step on CPU), and a free port for the server.
A README command that no rule here knows fails the test, so a new command cannot land unexercised.
"""
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from ppir.serving import launch
from torch_format import official_checkpoint

READMES = ("README.md", "README_en.md")
IN_PROCESS = {"tools/make_synthetic_data.py", "tools/convert_weights.py", "tools/model_info.py", "tools/eval.py",
              "tools/predict.py", "tools/export_model.py", "tools/export_onnx.py", "deploy/inference_python/infer.py",
              "deploy/onnxruntime/infer.py", "deploy/serving/client.py"}
LINKED = ("ppir", "tools", "configs", "deploy")
# Paper configs run at a tiny width (by model type) so a training step takes a second, not minutes.
SHRINK = {"HINet": ["model.wf=8"], "MIRNet": ["model.n_feat=8", "model.n_RRG=1", "model.n_MSRB=1"],
          "MIMOUNet": ["model.num_res=1"], "MIMOUNetPlus": ["model.num_res=1"]}
SHORT_TRAIN = ["train.iters=2", "train.batch_size=2", "train.num_workers=0", "train.val_interval=2",
               "train.save_interval=2", "train.log_interval=1"]


def readme_blocks(path, languages):
    """The fenced code blocks of a Markdown file whose language is in `languages`."""
    text = open(os.path.join(REPO, path), encoding="utf-8").read()
    return [m.group(2) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M) if m.group(1) in languages]


def readme_commands(path):
    commands = []
    for block in readme_blocks(path, ("bash", "sh", "shell")):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def test_both_readmes_give_the_same_commands_and_code():
    assert readme_commands(READMES[0]) == readme_commands(READMES[1])
    assert readme_blocks(READMES[0], ("python",)) == readme_blocks(READMES[1], ("python",))
    assert len(readme_commands(READMES[0])) >= 15


def test_quick_start_is_two_commands_and_the_second_is_what_ci_runs():
    for readme in READMES:
        text = open(os.path.join(REPO, readme), encoding="utf-8").read()
        section = re.search(r"^## (Quick start|快速开始).*?(?=^## )", text, re.S | re.M)
        assert section, f"{readme}: no Quick start section"
        cmds = [c for b in re.findall(r"^```bash\n(.*?)^```", section.group(0), re.S | re.M)
                for c in b.strip().splitlines()]
        assert cmds == ["python -m pip install -r requirements.txt && python tools/quickstart.py",
                        "python -m pip install -r requirements-dev.txt && bash tests/run_all.sh"], readme
    ci = [ln.strip() for ln in open(os.path.join(REPO, ".ci", "run"), encoding="utf-8")]
    assert "python -m pip install -r requirements-dev.txt && bash tests/run_all.sh" in ci
    # ... in a copy of the checkout with nothing beside it, as a user's clone is
    assert ci.index('cd "$work/ppir"') < ci.index("python -m pip install -r requirements-dev.txt && bash tests/run_all.sh")
    dev = [ln.strip() for ln in open(os.path.join(REPO, "requirements-dev.txt"), encoding="utf-8")]
    assert "-r requirements.txt" in dev


# ------------------------------------------------------------------------------------------ workspace
def make_sidd(ws):
    """A tiny SIDD in the official layouts: HINet's crops for training, the benchmark's .mat blocks."""
    import cv2
    import scipy.io

    rng = np.random.default_rng(0)
    for i in range(3):
        gt = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
        noisy = np.clip(gt + rng.normal(0, 20, gt.shape), 0, 255).astype(np.uint8)
        for sub, img in (("gt_crops", gt), ("input_crops", noisy)):
            os.makedirs(os.path.join(ws, "data/SIDD/train", sub), exist_ok=True)
            cv2.imwrite(os.path.join(ws, "data/SIDD/train", sub, f"0001_s{i:03d}.png"), img)
    gt = rng.integers(0, 256, (1, 2, 64, 64, 3), dtype=np.uint8)
    noisy = np.clip(gt + rng.normal(0, 20, gt.shape), 0, 255).astype(np.uint8)
    scipy.io.savemat(os.path.join(ws, "data/SIDD/ValidationNoisyBlocksSrgb.mat"), {"ValidationNoisyBlocksSrgb": noisy})
    scipy.io.savemat(os.path.join(ws, "data/SIDD/ValidationGtBlocksSrgb.mat"), {"ValidationGtBlocksSrgb": gt})


def official_checkpoint_for(ws, config, overrides, dst):
    """Random weights of a config's network, saved the way its authors released theirs."""
    import ppir

    model = ppir.build_model(os.path.join(REPO, config), overrides=overrides)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    path = os.path.join(ws, dst)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    official_checkpoint(type(model).__name__, state, path)


def model_type(config):
    import ppir

    return ppir.load_config(os.path.join(REPO, config))["model"]["type"]


def missing_pretrained(config):
    """["train.pretrained="] when the config's pretrained weights are not in the checkout (the demo configs
    fine-tune configs/demo/weights/*.pdparams; a README command still trains, from scratch), else []."""
    import ppir

    path = ppir.load_config(os.path.join(REPO, config))["train"].get("pretrained")
    return ["train.pretrained="] if path and not os.path.isfile(os.path.join(REPO, path)) else []


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = str(tmp_path_factory.mktemp("readme_ws"))
    for name in LINKED:
        os.symlink(os.path.join(REPO, name), os.path.join(ws, name))
    make_sidd(ws)
    return ws


# ---------------------------------------------------------------------------------------------- rules
class Runner:
    def __init__(self, ws, quick_start):
        self.ws = ws
        self.quick_start = quick_start  # conftest's run of `python tools/quickstart.py`: (folder, console output)
        self.server = None
        self.done = []

    def run(self, argv, timeout=600):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.run(argv, cwd=self.ws, capture_output=True, text=True, timeout=timeout, env=env)
        assert proc.returncode == 0, f"{shlex.join(argv)} -> exit {proc.returncode}\n{proc.stdout[-3000:]}\n" \
                                     f"{proc.stderr[-3000:]}"
        return proc.stdout

    def python(self, args, extra=()):
        if args and args[0] in IN_PROCESS:
            return self.in_process(args[0], [*args[1:], *extra])
        return self.run([sys.executable, *args, *extra])

    def in_process(self, script, argv):
        """`python <script> <argv>` as this process's __main__, from the workspace: its exit code must be 0."""
        import contextlib
        import io
        import runpy

        out, err = io.StringIO(), io.StringIO()
        saved_argv, saved_cwd, saved_path = sys.argv, os.getcwd(), list(sys.path)  # scripts prepend their checkout
        sys.argv = [script, *map(str, argv)]
        code = 0
        try:
            os.chdir(self.ws)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                runpy.run_path(os.path.join(self.ws, script), run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.argv, sys.path[:] = saved_argv, saved_path
            os.chdir(saved_cwd)
        assert code == 0, f"{shlex.join([script, *map(str, argv)])} -> exit {code}\n{out.getvalue()[-3000:]}\n" \
                          f"{err.getvalue()[-3000:]}"
        return out.getvalue()

    def handle(self, cmd):
        """Run one README command line; returns what was done (for the record)."""
        if " && " in cmd:
            for part in cmd.split(" && "):
                self.handle(part)
            return
        args = shlex.split(cmd)
        if args[:5] == ["python", "-m", "pip", "install", "-r"]:
            # Installing is what the CI environment did before this test (.ci/run installs
            # requirements-dev.txt, which includes requirements.txt): check the file is there.
            assert os.path.isfile(os.path.join(REPO, args[5])) and len(args) == 6, cmd
            self.done.append(("checked", cmd))
            return
        if args == ["python", "-m", "pip", "install", "."]:
            # Installing the package is what tests/smoke_installed.sh checks (a wheel in a fresh venv, the ppir
            # command run from outside the checkout); .ci/run calls it. Here it would change this environment.
            ci = open(os.path.join(REPO, ".ci", "run"), encoding="utf-8").read()
            assert "bash tests/smoke_installed.sh" in ci.splitlines(), "CI does not check `pip install .`"
            self.done.append(("checked by tests/smoke_installed.sh", cmd))
            return
        if args[0] == "ppir":  # the installed command; the workspace's linked package runs it the same way
            self.python(["-m", "ppir", *args[1:]])
            self.done.append(("ran", cmd))
            return
        if args[0] == "bash":
            return self.shell_script(cmd, args)
        assert args[0] == "python", f"README command with no rule in this test: {cmd}"
        if args[1:3] == ["-m", "paddle.distributed.launch"]:
            return self.distributed(args)
        script = args[1]
        rest = args[2:]
        config = rest[rest.index("-c") + 1] if "-c" in rest else (
            rest[rest.index("--config") + 1] if "--config" in rest else None)
        paper = config is not None and not config.startswith("configs/demo/")
        shrink = SHRINK[model_type(config)] if paper else []
        extra = []
        if args == ["python", "tools/quickstart.py"]:
            # This very command, with its defaults, ran once for the whole test run (conftest's
            # default_quick_start, shared with the quick-start tests); its results are checked below.
            assert self.quick_start[0].is_dir(), cmd
            self.done.append(("ran once per test run (conftest.default_quick_start)", cmd))
            return
        if script == "tools/train.py":
            short = list(SHORT_TRAIN)
            if "--resume" in rest:  # continue the previous run by one more step
                short = [o for o in short if not o.startswith("train.iters")] + ["train.iters=3"]
            extra = ["-o", *shrink, *short, *(["datasets.train.patch_size=64"] if paper else []),
                     *missing_pretrained(config)]
        elif script in ("tools/eval.py", "tools/predict.py", "tools/export_model.py"):
            extra = ["-o", *shrink] if shrink else []
        elif script == "tools/convert_weights.py":
            official_checkpoint_for(self.ws, config, shrink, rest[rest.index("--src") + 1])
            extra = ["-o", *shrink] if shrink else []
        elif script == "deploy/serving/server.py":
            return self.start_server(args)
        elif script == "deploy/serving/client.py":
            assert self.server is not None, "the README runs the client before starting the server"
            args = [a.replace("http://127.0.0.1:8080", self.server.url) for a in args]
        self.python(args[1:], extra)
        self.done.append(("ran", cmd))

    def shell_script(self, cmd, args):
        script = os.path.join(REPO, args[1])
        assert os.path.isfile(script), cmd
        if args[1] == "tests/run_all.sh":
            # This very test runs inside tests/run_all.sh, which .ci/run calls (see the test above).
            self.done.append(("is CI", cmd))
            return
        assert args[1].startswith("test_tipc/"), f"README command with no rule in this test: {cmd}"
        # The TIPC chain runs in tests/run_all.sh for every network: find this line there.
        run_all = [ln.strip() for ln in open(os.path.join(REPO, "tests", "run_all.sh"), encoding="utf-8")]
        generic = cmd
        for m in ("mirnet", "hinet", "mimo_unet"):
            generic = generic.replace(f"test_tipc/configs/{m}/train_infer_python.txt", '"$cfg"')
            generic = generic.replace(f"test_tipc/configs/{m}/", "test_tipc/configs/$m/")
        assert generic in run_all, f"README TIPC command not run by tests/run_all.sh: {cmd}"
        self.done.append(("in run_all.sh", cmd))

    def distributed(self, args):
        # Multi-GPU in the README; the same launcher with 2 CPU processes (gloo) here.
        launch_args = args[3:]
        assert launch_args[0] == "--gpus", args
        rest = launch_args[2:]
        config = rest[rest.index("-c") + 1]
        shrink = SHRINK[model_type(config)]
        self.python(["-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                     "output/dist_log", *rest], ["-o", *shrink, *SHORT_TRAIN, "datasets.train.patch_size=64",
                                                "train.output_dir=output/readme_dist"])
        self.done.append(("ran on 2 CPU processes", shlex.join(args)))

    def start_server(self, args):
        server_args = list(args[2:])
        server_args[server_args.index("--port") + 1] = "0"  # any free port; the client is pointed at it
        self.server = launch.start_server(server_args, os.path.join(self.ws, "server.log"), cwd=self.ws,
                                          script=args[1])
        self.done.append(("started", shlex.join(args)))

    def stop(self):
        if self.server is not None:
            self.server.stop()


@pytest.mark.xdist_group("default_quick_start")  # with the quick-start tests: one run of it, on one worker
def test_every_readme_command_runs(workspace, default_quick_start):
    runner = Runner(workspace, default_quick_start)
    try:
        for cmd in readme_commands("README_en.md"):
            runner.handle(cmd)
    finally:
        runner.stop()
    ws = workspace
    # What the commands promise to leave behind.
    qs_out, qs_printed = default_quick_start
    assert (qs_out / "metrics.md").read_text(encoding="utf-8") in qs_printed  # the table it printed, on disk too
    assert sorted(os.listdir(qs_out / "restored")) == sorted(os.listdir(qs_out / "data" / "lq"))
    assert os.path.isfile(os.path.join(ws, "weights/hinet_sidd_1x.pdparams"))
    assert os.path.isfile(os.path.join(ws, "inference/mirnet_demo/model.onnx"))
    assert sorted(os.listdir(os.path.join(ws, "output/predict"))) == sorted(os.listdir(os.path.join(ws, "data/demo_noise/lq")))
    from ppir.data.image_io import read_image

    assert read_image(os.path.join(ws, "restored.png")).shape == read_image(
        os.path.join(ws, "data/demo_noise/lq/chelsea_00001.png")).shape


def test_readme_python_code_runs(workspace):
    """The README's Python API example, with a fake official MIMO-UNet .pkl where it expects the real one."""
    blocks = readme_blocks("README_en.md", ("python",))
    assert blocks
    for code in blocks:
        for name in re.findall(r'"([\w.-]+\.pkl)"', code):
            official_checkpoint_for(workspace, "configs/mimo_unet_gopro.yml", [], name)
        proc = subprocess.run([sys.executable, "-c", code], cwd=workspace, capture_output=True, text=True,
                              timeout=300, env=dict(os.environ, PYTHONPATH=REPO))
        assert proc.returncode == 0, proc.stderr[-3000:]
