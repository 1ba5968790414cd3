"""Training on two processes (`paddle.distributed.launch`, gloo on the CPU) against one process, and exact resume of
a two-process run after SIGKILL.

The runs: a HINet at width 4 and depth 2 on 16x16 noisy patches, 10 Adam steps of a total batch of 4 (2 per rank
on two processes), validation at 5 and 10, a checkpoint every 2 steps, `num_workers: 0`.

What may differ between one and two processes, and the tolerances
-----------------------------------------------------------------
Both runs start from the same weights (seeded init) and see the same samples at every step: rank r of W takes the
r-th slice of the global batch (ppir/engine/trainer.py). PSNRLoss is a mean over samples and HINet has no
batch-coupled layer (InstanceNorm is per sample), so the full-batch gradient is exactly the mean of the two
half-batch gradients that DataParallel all-reduces. What differs is only the order of the float additions: two
half-batch means averaged by an all-reduce vs one full-batch mean, ~1e-7 relative for a gradient component of
ordinary size, which the 10 steps then carry along.

* Null directions. Adam divides by sqrt(v): a component whose gradient is pure float noise moves by ~lr per step
  in a noise-chosen direction in each run, so two correct runs can differ there by O(lr * steps). HINet has such
  components: the conv_1 bias of the channels that go through Half Instance Normalisation (the first half of a HIN
  block's channels) — the normalisation subtracts the per-channel mean, so the output does not depend on them and
  their exact gradient is 0. Measured: those 12 numbers differ by up to 2.3e-3 between the runs (the largest
  difference in the network), while they do not change what the network computes. The weight comparison leaves
  them out (`initial_weights_and_null_directions`); the exact-resume check compares every number.
* Weights: the measure is ||w_2 - w_1|| / ||w_1 - w_0|| over the other numbers (w_0: the initial weights, w_1 and
  w_2: after one and two processes), the difference relative to the total change training made. Float noise
  measured 4.2e-7 (max abs 3e-8). Real bugs make it O(0.1), measured by planting them in the trainer: every rank
  taking the first slice of the batch 0.14, no DataParallel (no gradient all-reduce; rank 0's half-batch updates
  are what gets saved) 0.14; and by config: other samples per step (15 instead of 16 training samples) 0.14,
  half the batch 0.12, twice the batch 0.11. WEIGHT_TOL = 1e-4: ~250x the noise, ~1000x below a bug.
* Logged losses: rank 0 logs the all-reduced mean of the ranks' losses (Trainer._global_loss), which for equal
  slices is the full-batch mean; with log_interval 1 each train.log line is one step's loss, printed with 6
  significant digits. Two values ~1e-7 apart can print one unit of the 6th digit apart (<= 1e-5 relative for
  |loss| >= 1; the losses here are ~ -12 .. -17), so LOSS_REL_TOL = 2e-5. Measured: all 10 printed identically.
  Other samples change the step-1 loss by ~3e-4 relative (-12.8051 vs -12.8089 with 15 samples); a loss summed
  instead of averaged over the ranks (planted in Trainer._global_loss) doubles it: relative difference 1.0.
* Validation PSNR (metrics.jsonl, full precision): measured differences 1.3e-7 and 1.7e-8 dB; the wrong-data runs
  above moved it by 2e-3 .. 5e-2 dB. PSNR_TOL = 1e-4 dB.
Not visible in the weights: gradients summed instead of averaged over the ranks, since Adam's step m / sqrt(v) is
invariant to the gradient's scale (up to its epsilon) — harmless for Adam, and the loss check catches a missing
division in what is logged.

Kill and resume
---------------
The launcher starts every trainer with os.setsid (paddle/distributed/launch/utils/process_context.py), so killing
the launcher's process group leaves the trainers running: they finish the run on their own. The test kills the
launcher's group and each trainer's, as a crash of the machine would, then launches the same run with --resume.
Resume restores weights, Adam moments, the schedule step and every rank's RNG state, and the all-reduce adds the
two ranks' gradients in the same order as in the uninterrupted run, so the final weights must be bit-identical.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from conftest import REPO

import ppir  # noqa: F401  (sets OMP threads before paddle)
import paddle  # noqa: E402

from ppir.convert.paddle_pickle import read_paddle_pdparams  # noqa: E402
from ppir.engine.checkpoint import newest_complete_checkpoint, read_state  # noqa: E402


def _gloo_available() -> bool:
    return paddle.distributed.is_available() and hasattr(paddle.base.core, "ProcessGroupGloo")


pytestmark = pytest.mark.skipif(not _gloo_available(),
                                reason="this paddle build has no gloo backend (paddle.distributed cannot start "
                                       "CPU processes)")

ITERS = 10
KILL_AFTER = 2  # checkpoint iteration to wait for before the kill
WEIGHT_TOL = 1e-4
LOSS_REL_TOL = 2e-5
PSNR_TOL = 1e-4

CONFIG = {
    "model": {"type": "HINet", "wf": 4, "depth": 2, "relu_slope": 0.2, "hin_position_left": 0,
              "hin_position_right": 4},
    "datasets": {
        "train": {"type": "SyntheticDataset", "degradation": "gaussian_noise", "images": ["astronaut", "coffee"],
                  "size": [32, 32], "num_samples": 16, "seed": 1, "patch_size": 16, "use_flip": True,
                  "use_rot": True},
        "val": {"type": "SyntheticDataset", "degradation": "gaussian_noise", "images": ["chelsea"],
                "size": [16, 16], "num_samples": 1, "seed": 2},
    },
    "loss": {"type": "PSNRLoss", "loss_weight": 0.5},
    "optimizer": {"type": "Adam", "lr": 1.0e-3, "beta1": 0.9, "beta2": 0.99},
    "lr_scheduler": {"type": "CosineAnnealing", "eta_min": 1.0e-5, "warmup": 2},
    "metrics": [{"type": "PSNR"}],
    "train": {"iters": ITERS, "batch_size": 4, "num_workers": 0, "seed": 3, "log_interval": 1,
              "val_interval": 5, "save_interval": KILL_AFTER, "keep_last": 0},
    "val": {"dataset": "val"},
}

ENV = dict(os.environ, PYTHONUNBUFFERED="1")


def train_cmd(cfg, out, *extra):
    return [os.path.join(REPO, "tools", "train.py"), "-c", str(cfg), "--no-progress", *extra,
            "-o", f"train.output_dir={out}"]


def one_process(cfg, out):
    return [sys.executable, *train_cmd(cfg, out)]


def two_processes(cfg, out, *extra):
    return [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
            "--log_dir", f"{out}_launch_log", *train_cmd(cfg, out, *extra)]


def run_ok(cmd, cwd):
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=ENV, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}{worker_logs(cmd)}"
    return r


def worker_logs(cmd):
    """The trainers' own output (the launcher shows little of it), for a failure message."""
    if "--log_dir" not in cmd:
        return ""
    folder = cmd[cmd.index("--log_dir") + 1]
    out = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.startswith("workerlog"):
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
                out.append(f"\n--- {name}\n{f.read()[-1500:]}")
    return "".join(out)


def weights(run_dir):
    return read_paddle_pdparams(os.path.join(run_dir, "latest", "model.pdparams"))  # ppir's restricted reader


def logged_losses(run_dir):
    """{iteration: loss as printed} from train.log; a resumed run appends, so the last line of an iteration wins."""
    found = {}
    with open(os.path.join(run_dir, "train.log"), encoding="utf-8") as f:
        for line in f:
            m = re.search(r"\biter (\d+)/\d+\s.*?\sloss (\S+)", line)
            if m:
                found[int(m.group(1))] = m.group(2)
    return found


def validations(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The config file and the uninterrupted two-process run (shared by both tests)."""
    base = tmp_path_factory.mktemp("dist")
    cfg = base / "tiny_hinet.yml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    two = base / "two"
    run_ok(two_processes(cfg, two), cwd=base)
    return cfg, two


# ------------------------------------------------------------------------------- one process vs two processes
def initial_weights_and_null_directions(cfg, out):
    """The weights training starts from (built by the trainer itself, with the run's seed) and, per tensor, a mask
    of the numbers the network's output depends on: False for the conv_1 biases of the HIN channels, which the
    instance normalisation cancels (see the module docstring)."""
    from ppir.config import load_config
    from ppir.engine.trainer import Trainer
    from ppir.models.hinet import UNetConvBlock

    # the run's own config and seed; a fresh folder, since `out` holds a finished run (a second trainer there is
    # refused without --resume)
    probe = out.parent / f"{out.name}_start"
    model = Trainer(load_config(str(cfg), [f"train.output_dir={probe}"]), progress=False).model
    start = {k: v.numpy() for k, v in model.state_dict().items()}
    keep = {k: np.ones(v.shape, bool) for k, v in start.items()}
    for name, layer in model.named_sublayers():
        if isinstance(layer, UNetConvBlock) and layer.use_hin:
            bias = keep[f"{name}.conv_1.bias"]
            bias[: bias.shape[0] // 2] = False
    return start, keep


def relative_difference(w, ref, start, keep):
    """||w - ref|| / ||ref - start|| over the numbers `keep` selects."""
    assert w.keys() == ref.keys() == start.keys()

    def flat(d):
        return np.concatenate([d[k].astype(np.float64)[keep[k]] for k in sorted(d)])

    a, b, s = flat(w), flat(ref), flat(start)
    change = np.linalg.norm(b - s)
    assert change > 0, "training did not change the weights"
    return float(np.linalg.norm(a - b) / change)


def test_two_processes_match_one_process_with_the_same_total_batch(reference, tmp_path):
    cfg, two = reference
    one = tmp_path / "one"
    run_ok(one_process(cfg, one), cwd=tmp_path)

    start, keep = initial_weights_and_null_directions(cfg, one)
    w1, w2 = weights(one), weights(two)
    assert sum(int((~m).sum()) for m in keep.values()) == 12  # the HIN biases left out: 2 + 4 per stage
    measure = relative_difference(w2, w1, start, keep)
    print(f"||w2 - w1|| / ||w1 - w0|| = {measure:.3g}")
    assert measure < WEIGHT_TOL

    l1, l2 = logged_losses(one), logged_losses(two)
    assert sorted(l1) == sorted(l2) == list(range(1, ITERS + 1))
    worst = max(abs(float(l2[i]) - float(l1[i])) / abs(float(l1[i])) for i in l1)
    print(f"largest relative difference of the logged losses: {worst:.3g}")
    assert worst <= LOSS_REL_TOL

    v1, v2 = validations(one), validations(two)
    assert [v["iter"] for v in v1] == [v["iter"] for v in v2] == [5, 10]
    for a, b in zip(v1, v2):
        assert b["metrics"]["psnr"] == pytest.approx(a["metrics"]["psnr"], abs=PSNR_TOL)


# ------------------------------------------------------------------------------------------------ kill + resume
def children(pid):
    """Direct children of `pid`, from /proc (the trainers are not in the launcher's process group)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # "pid (comm) state ppid ..."; comm may hold spaces
        if ppid == pid:
            kids.append(int(entry))
    return kids


def process_tree(pid):
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children(p))
    return tree


def gone(pid):
    """Exited: no /proc entry, or a zombie waiting for its new parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def kill_everything(launcher):
    """SIGKILL the launcher's process group and every trainer's (each trainer leads its own session)."""
    tree = process_tree(launcher.pid)
    groups = []
    for pid in tree:
        try:
            groups.append(os.getpgid(pid))
        except ProcessLookupError:
            pass
    for group in dict.fromkeys(groups):
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    launcher.wait(timeout=60)
    deadline = time.time() + 30
    while not all(gone(p) for p in tree) and time.time() < deadline:
        time.sleep(0.02)
    assert all(gone(p) for p in tree), "a trainer survived SIGKILL"
    return len(tree) - 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the trainer processes in /proc")
def test_two_process_run_resumes_exactly_after_sigkill(reference, tmp_path):
    cfg, two = reference
    run_dir = tmp_path / "killed"
    mark = run_dir / "checkpoints" / f"iter_{KILL_AFTER:08d}" / "state.json"  # written last: the checkpoint is whole
    launcher = subprocess.Popen(two_processes(cfg, run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=tmp_path, env=ENV, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not mark.exists() and launcher.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        assert mark.exists(), f"no checkpoint {KILL_AFTER} appeared{worker_logs(launcher.args)}"
    finally:
        trainers = kill_everything(launcher)
    assert trainers >= 2
    # the kill may fall between a checkpoint's rename and the `latest` swap: --resume then takes the newest one
    killed_at = read_state(newest_complete_checkpoint(str(run_dir)))["iteration"]
    assert KILL_AFTER <= killed_at < ITERS, "the run finished before it could be killed"
    assert not (run_dir / "latest.pdparams").exists()  # written at the very end only

    run_ok(two_processes(cfg, run_dir, "--resume"), cwd=tmp_path)
    log = (run_dir / "train.log").read_text()
    assert f"at iteration {killed_at}" in log and "resumed from" in log

    ref, resumed = weights(two), weights(run_dir)
    assert ref.keys() == resumed.keys()
    differ = [k for k in ref if not np.array_equal(ref[k], resumed[k])]
    assert not differ, (f"resumed at {killed_at}: {len(differ)} of {len(ref)} tensors differ from the uninterrupted "
                        f"run, e.g. {differ[:3]}")
    # what rank 0 logged for the steps after the checkpoint is the uninterrupted run's, digit for digit
    ref_losses, resumed_losses = logged_losses(two), logged_losses(run_dir)
    assert {i: resumed_losses[i] for i in ref_losses if i > killed_at} == \
        {i: v for i, v in ref_losses.items() if i > killed_at}
    # one validation record per iteration (those the killed run wrote after its checkpoint were dropped), equal
    records = validations(run_dir)
    assert [r["iter"] for r in records] == [r["iter"] for r in validations(two)] == [5, 10]
    assert [r["metrics"] for r in records] == [r["metrics"] for r in validations(two)]
