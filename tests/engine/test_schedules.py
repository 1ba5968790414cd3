"""Learning-rate schedules against independent references: the step-by-step (recursive) updates of the official
trainers' PyTorch schedulers, re-derived here, not ppir's closed forms.

* MIRNet (train_denoising.py / MPRNet train.py): GradualWarmupScheduler(multiplier=1, total_epoch=3,
  after_scheduler=CosineAnnealingLR(T_max=epochs-3, eta_min)), one `scheduler.step()` before the first epoch and
  one after each epoch.
* MIMO-UNet (train.py): MultiStepLR(milestones, gamma), one `scheduler.step()` after each epoch.
"""
import math
import os

import pytest
import yaml

from ppir.engine.optim import build_scheduler
from ppir.errors import ConfigError

from conftest import REPO, lr_at


def mirnet_upstream_lrs(base, eta_min, epochs, warmup, t_max):
    """lr of each epoch 1..epochs, following the schedulers' own update rules step by step."""
    lrs, lr, cos_step = [], None, 0
    for k in range(1, epochs + 1):  # k: the warmup scheduler's last_epoch during epoch k
        if k <= warmup:
            lr = base * k / warmup
        elif k == warmup + 1:
            lr = base  # handed over: the cosine's last lr, which it set on the optimizer when built
        else:
            cos_step += 1  # the cosine's recursive update from the previous epoch's lr
            lr = eta_min + (1 + math.cos(math.pi * cos_step / t_max)) / (
                1 + math.cos(math.pi * (cos_step - 1) / t_max)) * (lr - eta_min)
        lrs.append(lr)
    return lrs


def multistep_upstream_lrs(base, milestones, gamma, epochs):
    lrs, lr = [], base
    for k in range(1, epochs + 1):  # last_epoch = k - 1 during epoch k
        lrs.append(lr)
        if k in milestones:  # step() after epoch k: last_epoch becomes k, a milestone multiplies once
            lr *= gamma
    return lrs


def config_section(name):
    with open(os.path.join(REPO, "configs", name)) as f:
        return yaml.safe_load(f)["lr_scheduler"]


@pytest.mark.parametrize("ipe", [1, 7])
def test_mirnet_paper_config_steps_per_epoch_as_upstream(ipe):
    section = config_section("mirnet_sidd.yml")
    assert section["stepping"] == "epoch"
    base, epochs = 2e-4, 60
    sched = build_scheduler(section, base, epochs * ipe, ipe)
    want = mirnet_upstream_lrs(base, section["eta_min"], epochs, section["warmup"], epochs - section["warmup"])
    assert want[:4] == pytest.approx([base / 3, 2 * base / 3, base, base], rel=1e-12)
    for t in range(epochs * ipe):
        assert lr_at(sched, t) == pytest.approx(want[t // ipe], rel=1e-9, abs=1e-15), t
    # resuming mid-epoch lands on the same value
    sched.seek(4 * ipe + ipe // 2)
    assert sched.last_lr == pytest.approx(want[4], rel=1e-9)


def test_per_iteration_stepping_stays_available_and_differs():
    section = {**config_section("mirnet_sidd.yml"), "stepping": "iter"}
    sched = build_scheduler(section, 2e-4, 60 * 10, 10)
    assert lr_at(sched, 0) == pytest.approx(2e-4 / 30)  # ramps from ~0 within epoch 1 instead of holding base/3
    assert lr_at(sched, 29) == pytest.approx(2e-4)


@pytest.mark.parametrize("config", ["mimo_unet_gopro.yml", "mimo_unetplus_gopro.yml"])
def test_mimo_paper_configs_step_per_epoch_as_upstream(config):
    section = config_section(config)
    assert section["stepping"] == "epoch"
    base, epochs, ipe = 1e-4, 3000, 3
    sched = build_scheduler(section, base, epochs * ipe, ipe)
    want = multistep_upstream_lrs(base, section["milestones"], section["gamma"], epochs)
    assert want[499] == base and want[500] == base / 2 and want[-1] == base / 32
    for t in range(0, epochs * ipe):
        assert lr_at(sched, t) == pytest.approx(want[t // ipe], rel=1e-12), t
    # with whole-epoch milestones, per-iteration stepping gives the same values
    per_iter = build_scheduler({**section, "stepping": "iter"}, base, epochs * ipe, ipe)
    assert all(lr_at(per_iter, t) == lr_at(sched, t) for t in range(0, epochs * ipe, 5))


def test_epoch_stepping_description_and_errors():
    sched = build_scheduler({"type": "CosineAnnealing", "T_max": 4, "unit": "epoch", "stepping": "epoch"}, 1.0, 40, 10)
    assert "stepped once per epoch (10 steps)" in sched.description and "over 4 epochs" in sched.description
    assert [lr_at(sched, t) for t in (0, 9, 10, 19, 20)] == pytest.approx([1.0, 1.0, 0.8535534, 0.8535534, 0.5])
    with pytest.raises(ConfigError, match="stepping: epoch needs its durations in epochs"):
        build_scheduler({"type": "WarmupCosine", "unit": "iter", "stepping": "epoch"}, 1.0, 40, 10)
    with pytest.raises(ConfigError, match="stepping must be one of iter, epoch, got 'batch'"):
        build_scheduler({"type": "Constant", "stepping": "batch"}, 1.0, 40, 10)
