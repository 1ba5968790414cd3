"""Optimizers and learning-rate schedules a config can name (`optimizer:` and `lr_scheduler:` sections).

Every schedule is a closed-form function of the number of steps taken, so a resumed run needs nothing but that
number to continue exactly. Durations are in `unit: iter` (steps) or `unit: epoch`; epoch values are converted
at build time with `iters_per_epoch = ceil(len(train set) / batch_size)` (rounded to whole steps). A 3-epoch
warmup on 96,000 patches at batch 16 is 18,000 steps.

`stepping: iter` (default) changes the lr at every step (BasicSR/HINet). `stepping: epoch` (needs `unit:
epoch`) evaluates the same closed form at the epoch index and holds it for the whole epoch, which is what the
official MIRNet and MIMO-UNet trainers do by calling `scheduler.step()` once per epoch; their paper configs use it.

    optimizer:    {type: Adam, lr: 2.0e-4, beta1: 0.9, beta2: 0.99}
    lr_scheduler: {type: CosineAnnealing, T_max: 400000, eta_min: 1.0e-7}

Schedules (t = steps done, i.e. the 0-based index of the step about to run; `base` = optimizer lr):

* `CosineAnnealing(T_max, eta_min, warmup)`: PyTorch's CosineAnnealingLR closed form
  ``eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2`` (HINet's TrueCosineAnnealingLR; T_max 0 = the
  whole run). With `warmup` W > 0 the first W steps use ``base * (t + 1) / W`` instead, and the cosine goes on
  counting from step 0 underneath, as BasicSR's `warmup_iter` does (HINet Rain13k: 10000).
* `WarmupCosine(warmup, eta_min, T_max)`: MIRNet/MPRNet's GradualWarmupScheduler + CosineAnnealingLR: linear
  warmup ``base * (t + 1) / W`` for W steps, then a cosine from base to eta_min over T_max steps *after*
  the warmup (T_max 0 = the rest of the run). `stepping: epoch` gives upstream's per-epoch values exactly.
* `MultiStep(milestones, gamma, warmup)`: ``base * gamma ** (number of milestones <= t)`` (MIMO-UNet: epochs
  500, 1000, ... 3000, gamma 0.5, unit epoch: the lr halves when epoch 500 (0-based) starts; with integer
  epoch milestones both steppings give the same values).
* `Constant(warmup)`: base (after an optional linear warmup).
"""
from __future__ import annotations

import bisect
import math

from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
import paddle

from ..errors import ConfigError
from ..registry import OPTIMIZERS, SCHEDULERS

UNITS = ("iter", "epoch")


def _num(value, name: str, cls: str, minimum: float = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ConfigError(f"{cls}: {name} must be a finite number, got {value!r}")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        raise ConfigError(f"{cls}: {name} must be {'>' if strict else '>='} {minimum}, got {value!r}")
    return float(value)


# ----------------------------------------------------------------------------------------------- optimizers
class _AdamBase:
    paddle_cls = paddle.optimizer.Adam

    def __init__(self, lr: float, beta1: float, beta2: float, epsilon: float, weight_decay: float):
        cls = type(self).__name__
        self.lr = _num(lr, "lr", cls, 0.0, strict=True)
        self.beta1 = _num(beta1, "beta1", cls, 0.0)
        self.beta2 = _num(beta2, "beta2", cls, 0.0)
        if self.beta1 >= 1 or self.beta2 >= 1:
            raise ConfigError(f"{cls}: beta1 and beta2 must be < 1, got {beta1}, {beta2}")
        self.epsilon = _num(epsilon, "epsilon", cls, 0.0, strict=True)
        self.weight_decay = _num(weight_decay, "weight_decay", cls, 0.0)

    def build(self, parameters, learning_rate, grad_clip=None, multi_precision: bool = False):
        """The paddle optimizer; `learning_rate` is a float or a paddle LRScheduler (see `build_scheduler`)."""
        return self.paddle_cls(learning_rate=learning_rate, parameters=parameters, beta1=self.beta1,
                               beta2=self.beta2, epsilon=self.epsilon, weight_decay=self.weight_decay or None,
                               grad_clip=grad_clip, multi_precision=multi_precision)


@OPTIMIZERS.register
class Adam(_AdamBase):
    """Adam with L2 weight decay added to the gradient (PyTorch `Adam(weight_decay=...)`, coupled)."""

    def __init__(self, lr: float = 2e-4, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr, beta1, beta2, epsilon, weight_decay)


@OPTIMIZERS.register
class AdamW(_AdamBase):
    """AdamW: decoupled weight decay (``param -= lr * weight_decay * param``), PyTorch `AdamW` semantics."""

    paddle_cls = paddle.optimizer.AdamW

    def __init__(self, lr: float = 2e-4, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(lr, beta1, beta2, epsilon, weight_decay)

    def build(self, parameters, learning_rate, grad_clip=None, multi_precision: bool = False):
        return self.paddle_cls(learning_rate=learning_rate, parameters=parameters, beta1=self.beta1,
                               beta2=self.beta2, epsilon=self.epsilon, weight_decay=self.weight_decay,
                               grad_clip=grad_clip, multi_precision=multi_precision)


# ----------------------------------------------------------------------------------------------- schedules
class ClosedFormLR(paddle.optimizer.lr.LRScheduler):
    """A paddle LRScheduler whose lr is `fn(last_epoch)`; `last_epoch` counts steps (one `step()` per iteration).

    Its whole state is `last_epoch`, so `set_state_dict({'last_epoch': t})` (or `.seek(t)`) resumes exactly.
    """

    def __init__(self, base_lr: float, fn, description: str = ""):
        self._fn = fn
        self.description = description
        super().__init__(learning_rate=base_lr)  # calls step(): last_epoch 0, last_lr fn(0)

    def get_lr(self) -> float:
        return float(self._fn(max(0, self.last_epoch)))

    def seek(self, t: int) -> None:
        self.last_epoch = int(t)
        self.last_lr = self.get_lr()

    def set_state_dict(self, state: dict) -> None:
        self.seek(int(state["last_epoch"]))

    set_dict = set_state_dict

    def state_dict(self) -> dict:
        return {"last_epoch": int(self.last_epoch), "last_lr": float(self.last_lr)}


STEPPINGS = ("iter", "epoch")


class _Schedule:
    """A config-level schedule; `build(base_lr, total_iters, iters_per_epoch)` gives a ClosedFormLR.

    Subclasses give `_fn(base_lr, total, per_unit) -> (fn, description)`: the lr as a function of steps taken,
    with every duration converted by `per_unit` steps per configured unit (see `_iters`). `stepping` says how
    often the lr changes: `iter` (every step) or `epoch`, where the schedule is evaluated in whole epochs and
    held for the epoch, as the official MIRNet and MIMO-UNet trainers do (`scheduler.step()` once per epoch).
    """

    def __init__(self, unit: str, stepping: str = "iter"):
        cls = type(self).__name__
        if unit not in UNITS:
            raise ConfigError(f"{cls}: unit must be one of {', '.join(UNITS)}, got {unit!r}")
        if stepping not in STEPPINGS:
            raise ConfigError(f"{cls}: stepping must be one of {', '.join(STEPPINGS)}, got {stepping!r}")
        if stepping == "epoch" and unit != "epoch":
            raise ConfigError(f"{cls}: stepping: epoch needs its durations in epochs (unit: epoch), got unit {unit!r}")
        self.unit, self.stepping = unit, stepping

    def _iters(self, value, name: str, per_unit: int) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{type(self).__name__}: {name} must be a number >= 0, got {value!r}")
        return int(round(value * per_unit)) if self.unit == "epoch" else int(round(value))

    def _fn(self, base_lr: float, total: int, per_unit: int):
        raise NotImplementedError

    def build(self, base_lr: float, total_iters: int, iters_per_epoch: int) -> ClosedFormLR:
        if self.stepping == "iter":
            fn, text = self._fn(base_lr, total_iters, iters_per_epoch)
            return ClosedFormLR(base_lr, fn, text)
        # Per epoch: the same closed form counted in epochs (durations unconverted), held for each epoch.
        # A resumed run only needs the step count: epoch = steps // iters_per_epoch.
        ipe = max(1, int(iters_per_epoch))
        fn_e, text = self._fn(base_lr, math.ceil(total_iters / ipe), 1)
        return ClosedFormLR(base_lr, lambda t: fn_e(t // ipe),
                            text.replace("steps", "epochs") + f"; stepped once per epoch ({ipe} steps)")


def _warmup(fn, base_lr: float, warmup: int):
    if warmup <= 0:
        return fn
    return lambda t: base_lr * (t + 1) / warmup if t < warmup else fn(t)


def _cosine(base_lr: float, eta_min: float, t_max: int):
    t_max = max(1, t_max)
    return lambda t: eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


@SCHEDULERS.register
class CosineAnnealing(_Schedule):
    """Cosine from the optimizer lr to `eta_min` over `T_max` steps (0 = the whole run), optional linear warmup
    that overrides the first `warmup` steps (BasicSR/HINet style)."""

    def __init__(self, T_max: int = 0, eta_min: float = 0.0, warmup: int = 0, unit: str = "iter",
                 stepping: str = "iter"):
        super().__init__(unit, stepping)
        self.T_max, self.warmup = T_max, warmup
        self.eta_min = _num(eta_min, "eta_min", "CosineAnnealing", 0.0)
        self._iters(T_max, "T_max", 1)
        self._iters(warmup, "warmup", 1)

    def _fn(self, base_lr, total, per_unit):
        t_max = self._iters(self.T_max, "T_max", per_unit) or total
        w = self._iters(self.warmup, "warmup", per_unit)
        fn = _warmup(_cosine(base_lr, self.eta_min, t_max), base_lr, w)
        return fn, (f"cosine {base_lr:g} -> {self.eta_min:g} over {t_max} steps"
                    + (f", linear warmup {w} steps" if w else ""))


@SCHEDULERS.register
class WarmupCosine(_Schedule):
    """Linear warmup for `warmup` units, then a cosine to `eta_min` over `T_max` units (0 = the rest of the run):
    MIRNet's GradualWarmupScheduler(total_epoch=3) + CosineAnnealingLR(T_max=epochs-3, eta_min=1e-6). With
    `stepping: epoch` this is upstream's sequence exactly: base/3, 2*base/3, base for epochs 1-3, then the
    cosine from base, one value per epoch."""

    def __init__(self, warmup: int = 3, eta_min: float = 1e-6, T_max: int = 0, unit: str = "epoch",
                 stepping: str = "iter"):
        super().__init__(unit, stepping)
        self.warmup, self.T_max = warmup, T_max
        self.eta_min = _num(eta_min, "eta_min", "WarmupCosine", 0.0)
        self._iters(T_max, "T_max", 1)
        self._iters(warmup, "warmup", 1)

    def _fn(self, base_lr, total, per_unit):
        w = self._iters(self.warmup, "warmup", per_unit)
        t_max = self._iters(self.T_max, "T_max", per_unit) or max(1, total - w)
        cos = _cosine(base_lr, self.eta_min, t_max)
        fn = _warmup(lambda t: cos(t - w), base_lr, w)
        return fn, f"linear warmup {w} steps, then cosine {base_lr:g} -> {self.eta_min:g} over {t_max} steps"


@SCHEDULERS.register
class MultiStep(_Schedule):
    """Multiply the lr by `gamma` at each milestone (MIMO-UNet: every 500 epochs, gamma 0.5)."""

    def __init__(self, milestones: list = (), gamma: float = 0.1, warmup: int = 0, unit: str = "iter",
                 stepping: str = "iter"):
        super().__init__(unit, stepping)
        if not isinstance(milestones, (list, tuple)):
            raise ConfigError(f"MultiStep: milestones must be a list of numbers, got {milestones!r}")
        for m in milestones:
            self._iters(m, "milestones", 1)
        if list(milestones) != sorted(milestones):
            raise ConfigError(f"MultiStep: milestones must be increasing, got {list(milestones)}")
        self.milestones = list(milestones)
        self.gamma = _num(gamma, "gamma", "MultiStep", 0.0)
        self.warmup = warmup
        self._iters(warmup, "warmup", 1)

    def _fn(self, base_lr, total, per_unit):
        ms = [self._iters(m, "milestones", per_unit) for m in self.milestones]
        gamma = self.gamma
        fn = _warmup(lambda t: base_lr * gamma ** bisect.bisect_right(ms, t), base_lr,
                     self._iters(self.warmup, "warmup", per_unit))
        return fn, f"x{gamma:g} at steps {ms}"


@SCHEDULERS.register
class Constant(_Schedule):
    """The optimizer lr throughout (after an optional linear warmup)."""

    def __init__(self, warmup: int = 0, unit: str = "iter", stepping: str = "iter"):
        super().__init__(unit, stepping)
        self.warmup = warmup
        self._iters(warmup, "warmup", 1)

    def _fn(self, base_lr, total, per_unit):
        w = self._iters(self.warmup, "warmup", per_unit)
        return _warmup(lambda t: base_lr, base_lr, w), f"constant {base_lr:g}"


# ----------------------------------------------------------------------------------------------- builders
def build_optimizer_spec(section, source: str = ""):
    """The config-level optimizer (`optimizer:` section; default Adam with its defaults); `source` (the config
    file) is named in errors."""
    return OPTIMIZERS.build(section or {"type": "Adam"}, "optimizer", source)


def build_scheduler(section, base_lr: float, total_iters: int, iters_per_epoch: int,
                    source: str = "") -> ClosedFormLR:
    """The per-iteration schedule (`lr_scheduler:` section; default Constant)."""
    spec = SCHEDULERS.build(section or {"type": "Constant"}, "lr_scheduler", source)
    return spec.build(base_lr, total_iters, iters_per_epoch)


def grad_clip(norm: float):
    """paddle.nn.ClipGradByGlobalNorm(norm) (torch.nn.utils.clip_grad_norm_), or None for norm 0."""
    return paddle.nn.ClipGradByGlobalNorm(float(norm)) if norm and norm > 0 else None
