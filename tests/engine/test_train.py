"""Training engine: exact resume after SIGKILL, NaN stop, one-line data errors, schedules, checkpoints, RNG."""
import json
import math
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from conftest import REPO, lr_at, run_tool

import ppir  # noqa: F401  (sets OMP threads before paddle)
import paddle  # noqa: E402

from ppir.errors import CheckpointError, ConfigError  # noqa: E402


def tiny_config(tmp_path, name="run", **train):
    """MIMO-UNet+ (it has dropout, so paddle's RNG must be restored too) at 4 channels on 32x32 noisy patches."""
    cfg = {
        "model": {"type": "MIMOUNetPlus", "num_res": 1, "base_channel": 4},
        "datasets": {
            "train": {"type": "SyntheticDataset", "degradation": "gaussian_noise", "images": ["astronaut", "coffee"],
                      "size": [64, 64], "num_samples": 12, "seed": 1, "patch_size": 32, "use_flip": True,
                      "use_rot": True},
            "val": {"type": "SyntheticDataset", "degradation": "gaussian_noise", "images": ["chelsea"],
                    "size": [36, 44], "num_samples": 2, "seed": 2},
        },
        "loss": {"type": "MultiScaleFFTLoss"},
        "optimizer": {"type": "Adam", "lr": 1.0e-3},
        "lr_scheduler": {"type": "CosineAnnealing", "eta_min": 1.0e-5, "warmup": 3},
        "metrics": [{"type": "PSNR"}, {"type": "SSIM"}],
        "train": {"iters": 30, "batch_size": 4, "num_workers": 2, "seed": 5, "log_interval": 5,
                  "output_dir": str(tmp_path / name), "val_interval": 15, "save_interval": 5, "keep_last": 0,
                  "mixup_alpha": 1.2, "mixup_start_epoch": 1, **train},
    }
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def train_cmd(cfg, *extra):
    return [sys.executable, os.path.join(REPO, "tools", "train.py"), "-c", str(cfg), "--no-progress", *map(str, extra)]


def weights(path):
    from ppir.convert.paddle_pickle import read_paddle_pdparams

    return read_paddle_pdparams(os.path.join(path, "model.pdparams"))


def max_abs_diff(a, b):
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)


# ------------------------------------------------------------------------------------------------ end to end
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    full_cfg = tiny_config(tmp_path, "full")
    r = subprocess.run(train_cmd(full_cfg), capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]

    cfg = tiny_config(tmp_path, "killed")
    run_dir = tmp_path / "killed"
    mid = run_dir / "checkpoints" / "iter_00000010"
    proc = subprocess.Popen(train_cmd(cfg), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        while not mid.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert mid.exists(), "no mid-run checkpoint appeared"
        os.killpg(proc.pid, signal.SIGKILL)  # the trainer and its DataLoader workers, mid-training
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = json.loads((run_dir / "latest" / "state.json").read_text())["iteration"]
    assert 5 <= killed_at < 30, "the run finished before it could be killed"

    r = subprocess.run(train_cmd(cfg, "--resume"), capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in r.stderr and f"at iteration {killed_at}" in r.stderr

    diff = max_abs_diff(weights(tmp_path / "full" / "latest"), weights(run_dir / "latest"))
    print(f"resume after SIGKILL at iteration {killed_at}: max abs weight difference {diff:g}")
    # bit-identical, as docs/architecture.md promises, on any CPU: both runs take the same code path with the
    # same thread counts (a compiled validation no longer leaves MKL at one thread: ppir.infer.math_threads)
    assert diff == 0
    # the same validations and the same best checkpoint
    full_val = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    resumed_val = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # records of validations after the resumed checkpoint are replayed, not duplicated
    assert [v["iter"] for v in resumed_val] == [v["iter"] for v in full_val]
    assert [v["metrics"] for v in full_val] == [v["metrics"] for v in resumed_val]
    assert os.path.realpath(tmp_path / "full" / "best").endswith(os.path.basename(os.path.realpath(run_dir / "best")))
    # every numbered checkpoint folder is complete; no temporary folder is left
    names = sorted(os.listdir(run_dir / "checkpoints"))
    assert names and all(n.startswith("iter_") for n in names)
    for n in names:
        assert {"model.pdparams", "optimizer.pdopt", "state.json"} <= set(os.listdir(run_dir / "checkpoints" / n))
    log = (run_dir / "train.log").read_text()
    assert "resumed from" in log and "val @ iter 30" in log


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    # An honest divergence: from step 3 on the lr is multiplied by 1e30, so the weights explode after that step
    # and the next loss is inf/NaN. Checkpoints every 3 steps: iteration 3 (good) must stay `latest`.
    cfg = tiny_config(tmp_path, "nan", iters=12, save_interval=3, val_interval=0, num_workers=0)
    data = yaml.safe_load(cfg.read_text())
    data["lr_scheduler"] = {"type": "MultiStep", "milestones": [3], "gamma": 1.0e30}
    cfg.write_text(yaml.safe_dump(data))
    r = subprocess.run(train_cmd(cfg, "--amp"), capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "AMP needs a GPU" in r.stderr  # --amp on a CPU: a warning, then float32
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "non-finite loss" in errors[0] and "last good checkpoint" in errors[0]
    assert "Traceback" not in r.stderr
    run_dir = tmp_path / "nan"
    assert os.path.realpath(run_dir / "latest").endswith("iter_00000003")
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["iter_00000003"]
    w = weights(run_dir / "latest")
    assert all(np.isfinite(v).all() for v in w.values())
    model = ppir.build_model(data)
    ppir.load_weights(model, str(run_dir / "latest"))  # the user-facing loader reads a checkpoint folder


def test_missing_dataset_is_one_line_exit_2(tmp_path):
    cfg = tiny_config(tmp_path, "missing")
    data = yaml.safe_load(cfg.read_text())
    missing = tmp_path / "no_such_sidd"
    data["datasets"]["train"] = {"type": "SIDDDataset", "root": str(missing), "patch_size": 32}
    cfg.write_text(yaml.safe_dump(data))
    r = run_tool("train", "-c", cfg, timeout=120)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip() and "ccache" not in line and "warn" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: datasets.train: SIDDDataset") and str(missing) in lines[0]
    assert not (tmp_path / "missing").exists()


def test_unknown_train_key_is_a_config_error(tmp_path):
    cfg = tiny_config(tmp_path, "typo")
    r = run_tool("train", "-c", cfg, "-o", "train.iter=5", timeout=120)
    assert r.returncode == 2
    assert "unknown key 'train.iter'" in r.stderr and "did you mean 'iters'" in r.stderr


# ------------------------------------------------------------------------------------------------ in process
def test_sample_stream_is_independent_of_ranks_and_resume():
    from ppir.data import SyntheticDataset
    from ppir.engine.trainer import SampleStream, StreamBatchSampler

    ds = SyntheticDataset(images=["astronaut"], size=[48, 48], num_samples=5, patch_size=16)
    stream = SampleStream(ds, seed=3)
    one = StreamBatchSampler(0, 4, 4)
    two = [StreamBatchSampler(0, 4, 4, rank=r, world_size=2) for r in range(2)]
    for it in range(4):
        assert two[0].indices(it) + two[1].indices(it) == one.indices(it)
    assert list(StreamBatchSampler(2, 4, 4))[0] == one.indices(2)  # a resumed run continues the same stream
    # every epoch visits each index once, in a per-epoch order
    assert sorted(stream.index_of(k) for k in range(5)) == list(range(5))
    assert [stream.index_of(k) for k in range(5)] != [stream.index_of(k) for k in range(5, 10)]
    a, b = stream[7], SampleStream(ds, seed=3)[7]
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    with pytest.raises(ConfigError):
        StreamBatchSampler(0, 1, 5, rank=0, world_size=2)


def test_schedules_closed_form_and_epoch_units():
    from ppir.engine.optim import CosineAnnealing, MultiStep, WarmupCosine

    s = CosineAnnealing(T_max=100, eta_min=1e-7).build(2e-4, 100, 10)
    for t in (0, 1, 37, 99):
        assert lr_at(s, t) == pytest.approx(1e-7 + (2e-4 - 1e-7) * (1 + math.cos(math.pi * t / 100)) / 2)
    s = CosineAnnealing(T_max=100, warmup=10).build(1.0, 100, 10)
    assert lr_at(s, 0) == pytest.approx(0.1) and lr_at(s, 9) == pytest.approx(1.0)
    assert lr_at(s, 10) == pytest.approx((1 + math.cos(math.pi * 10 / 100)) / 2)
    m = MultiStep(milestones=[2, 4], gamma=0.5, unit="epoch").build(1e-4, 100, 7)  # 7 iterations per epoch
    assert [lr_at(m, t) for t in (13, 14, 27, 28)] == pytest.approx([1e-4, 5e-5, 5e-5, 2.5e-5])
    w = WarmupCosine(warmup=3, eta_min=1e-6, unit="epoch").build(2e-4, 600, 10)  # 30 warmup steps
    assert lr_at(w, 0) == pytest.approx(2e-4 / 30) and lr_at(w, 29) == pytest.approx(2e-4)
    assert lr_at(w, 30) == pytest.approx(2e-4) and lr_at(w, 600) == pytest.approx(1e-6)
    # paddle's scheduler object follows the same numbers step by step and seeks exactly
    w.step(), w.step()
    assert w.last_lr == pytest.approx(lr_at(w, 2))
    w.seek(400)
    assert w.get_lr() == pytest.approx(lr_at(w, 400))
    with pytest.raises(ConfigError):
        MultiStep(milestones=[4, 2])


def test_rng_state_round_trip_through_json():
    from ppir.engine.checkpoint import rng_state, set_rng_state

    random.seed(1), np.random.seed(2), paddle.seed(3)
    random.random(), np.random.rand(3), paddle.rand([3])
    saved = json.loads(json.dumps(rng_state()))  # really through JSON text
    first = (random.random(), np.random.rand(3), paddle.rand([5]).numpy(),
             paddle.nn.functional.dropout(paddle.ones([64]), 0.5).numpy())
    random.seed(9), np.random.seed(9), paddle.seed(9)
    set_rng_state(saved)
    again = (random.random(), np.random.rand(3), paddle.rand([5]).numpy(),
             paddle.nn.functional.dropout(paddle.ones([64]), 0.5).numpy())
    assert first[0] == again[0]
    for x, y in zip(first[1:], again[1:]):
        assert np.array_equal(x, y)


def test_checkpoint_round_trip_and_atomic_layout(tmp_path):
    from ppir.engine.checkpoint import CheckpointManager, load_checkpoint, optimizer_state

    def build():
        paddle.seed(0)
        net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3, padding=1), paddle.nn.Conv2D(4, 3, 3, padding=1))
        opt = paddle.optimizer.Adam(learning_rate=1e-3, parameters=net.parameters())
        return net, opt

    net, opt = build()
    for _ in range(2):
        net(paddle.rand([1, 3, 8, 8])).mean().backward()
        opt.step()
        opt.clear_grad()
    mgr = CheckpointManager(str(tmp_path / "run"), keep_last=2)
    (tmp_path / "run" / "checkpoints" / ".tmp-iter_00000001-stale").mkdir(parents=True)  # a crash leftover
    for it in (1, 2, 3):
        mgr.save(it, net, opt, {"best": {"metric": "psnr", "value": 30.0, "iter": 1}}, is_best=(it == 1))
    names = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    assert names == ["iter_00000001", "iter_00000002", "iter_00000003"]  # 2 kept + the best
    assert os.path.realpath(tmp_path / "run" / "latest").endswith("iter_00000003")
    assert os.path.realpath(tmp_path / "run" / "best").endswith("iter_00000001")
    mgr.save(4, net, opt, {})
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["iter_00000001", "iter_00000003",
                                                                     "iter_00000004"]

    net2, opt2 = build()  # a second network in this process: its paddle tensor names differ
    assert [p.name for p in net2.parameters()] != [p.name for p in net.parameters()]
    state = load_checkpoint(str(tmp_path / "run"), net2, opt2)
    assert state["iteration"] == 4
    for (k, a), (_, b) in zip(net.state_dict().items(), net2.state_dict().items()):
        assert np.array_equal(a.numpy(), b.numpy()), k
    s1, s2 = optimizer_state(opt, net), optimizer_state(opt2, net2)
    assert s1.keys() == s2.keys() and any(k.endswith("moment1_0") for k in s1)
    for k in s1:
        assert np.array_equal(s1[k].numpy(), s2[k].numpy()), k
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(str(tmp_path / "nowhere"), net2)
