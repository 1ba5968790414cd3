"""The plain config sections `train:`, `val:` and `export:`: every key, its type and its default.

`ppir.config` validates every config against `SECTIONS` itself, so a config (or an `-o train.x=...` override)
may use exactly these keys, with values of the default's type, whatever the caller imported; anything else is a
one-line ConfigError naming the key. This module stays light (no paddle) for that reason. Checks that involve
several keys (e.g. `iters` or `epochs`) are in `check()`, run when a tool reads its section (`options_from`).

Units. Iterations are optimizer steps. An *epoch* is `len(train dataset)` samples; the engine streams
samples across epoch boundaries (see `ppir.engine.trainer`), so an epoch is `N / batch_size` iterations,
and `iters_per_epoch = ceil(N / batch_size)` is what epoch-denominated values (`epochs`, intervals with
`interval_unit: epoch`, `mixup_start_epoch`, schedulers with `unit: epoch`) are multiplied by.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .errors import ConfigError
from .infer.backend_registry import NETWORK, names as backend_names

INTERVAL_UNITS = ("iter", "epoch")
INITS = ("torch", "paddle")
AMP_LEVELS = ("O1", "O2")
AMP_DTYPES = ("float16", "bfloat16")
ENGINES = ("dygraph", "to_static")
# what restores a network in-process (--backend of predict/eval, val.backend), from the one list of kinds
NETWORK_BACKENDS = backend_names(NETWORK)


@dataclass
class TrainOptions:
    """`train:` — how long, how big, where the outputs go, and what happens when."""

    # --- length (give one of the two; `iters` wins when both are set)
    iters: int = 0                  # total optimizer steps (HINet: 400000)
    epochs: int = 0                 # total epochs = epochs * iters_per_epoch steps (MIRNet 60, MIMO-UNet 3000)
    # --- batches
    batch_size: int = 8             # samples per step over ALL devices (divided evenly between GPUs)
    num_workers: int = 2            # DataLoader worker processes per device (0 = load in the main process)
    seed: int = 0                   # seeds init, sample order, augmentation, MixUp, dropout (>= 0)
    # --- outputs
    output_dir: str = "output/run"  # checkpoints/, latest, best, train.log, metrics.jsonl, vdl/
    log_interval: int = 20          # steps between log lines (and VisualDL points)
    interval_unit: str = "iter"     # unit of val_interval and save_interval: iter | epoch
    val_interval: float = 0.0       # validate (and checkpoint) every N units; 0 = only at the end
    save_interval: float = 1000.0   # checkpoint every N units (also at every validation and at the end)
    keep_last: int = 3              # numbered checkpoints kept (the best one is never deleted); 0 = all
    # --- optimisation
    grad_clip_norm: float = 0.0     # clip gradients to this global L2 norm (HINet 0.01); 0 = off
    mixup_alpha: float = 0.0        # MIRNet MixUp: lam ~ Beta(alpha, alpha) per sample; 0 = off
    mixup_start_epoch: int = 0      # first (0-based) epoch with MixUp (MIRNet: 5, i.e. its "epoch > 5")
    amp: bool = False               # mixed precision (GPU only; on CPU a warning and float32)
    amp_level: str = "O1"           # paddle.amp level: O1 (lists of fp16-safe ops) or O2 (fp16 weights)
    amp_dtype: str = "float16"      # float16 (with a GradScaler) or bfloat16
    deterministic: bool = False     # GPU: FLAGS_cudnn_deterministic (slower, bit-reproducible runs)
    pretrained: str = ""            # weights loaded before training (any format ppir.load_weights reads)
    init: str = "torch"             # initialisation from scratch: torch (PyTorch's defaults, what the official
                                    # recipes train from) or paddle (Paddle's defaults; diverges for deep nets)
    engine: str = "dygraph"         # dygraph: eager forward and backward; to_static: the forward runs as a
                                    # static program (paddle.jit.to_static), backward and update stay eager
                                    # (docs/training_speed.md: figures, and what it was checked against)

    def check(self, source: str = "train") -> "TrainOptions":
        def bad(key, why):
            return ConfigError(f"{source}: train.{key} {why}")

        if self.iters < 0 or self.epochs < 0:
            raise bad("iters" if self.iters < 0 else "epochs", "must be >= 0")
        if self.iters == 0 and self.epochs == 0:
            raise ConfigError(f"{source}: the run has no length: set train.iters (steps) or train.epochs "
                              f"(neither is above 0)")
        if self.batch_size < 1:
            raise bad("batch_size", f"must be >= 1, got {self.batch_size}")
        if self.engine not in ENGINES:
            raise bad("engine", f"must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.num_workers < 0:
            raise bad("num_workers", f"must be >= 0, got {self.num_workers}")
        if self.seed < 0:
            raise bad("seed", f"must be >= 0, got {self.seed}")
        if not self.output_dir:
            raise bad("output_dir", "must not be empty")
        if self.log_interval < 1:
            raise bad("log_interval", f"must be >= 1, got {self.log_interval}")
        if self.interval_unit not in INTERVAL_UNITS:
            raise bad("interval_unit", f"must be one of {', '.join(INTERVAL_UNITS)}, got {self.interval_unit!r}")
        for key in ("val_interval", "save_interval"):
            v = getattr(self, key)
            if v < 0 or not math.isfinite(v):
                raise bad(key, f"must be >= 0, got {v}")
            if self.interval_unit == "iter" and v != int(v):
                raise bad(key, f"must be a whole number of iterations, got {v} (or set interval_unit: epoch)")
        if self.keep_last < 0:
            raise bad("keep_last", f"must be >= 0, got {self.keep_last}")
        if self.grad_clip_norm < 0:
            raise bad("grad_clip_norm", f"must be >= 0 (0 = off), got {self.grad_clip_norm}")
        if self.mixup_alpha < 0:
            raise bad("mixup_alpha", f"must be >= 0 (0 = off), got {self.mixup_alpha}")
        if self.mixup_start_epoch < 0:
            raise bad("mixup_start_epoch", f"must be >= 0, got {self.mixup_start_epoch}")
        if self.init not in INITS:
            raise bad("init", f"must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.amp_level not in AMP_LEVELS:
            raise bad("amp_level", f"must be one of {', '.join(AMP_LEVELS)}, got {self.amp_level!r}")
        if self.amp_dtype not in AMP_DTYPES:
            raise bad("amp_dtype", f"must be one of {', '.join(AMP_DTYPES)}, got {self.amp_dtype!r}")
        return self

    def total_iters(self, iters_per_epoch: int) -> int:
        return self.iters if self.iters > 0 else self.epochs * iters_per_epoch

    def interval_iters(self, value: float, iters_per_epoch: int) -> int:
        """An interval in steps (0 = never); epoch intervals are rounded to whole steps (at least 1)."""
        if value <= 0:
            return 0
        if self.interval_unit == "epoch":
            return max(1, int(round(value * iters_per_epoch)))
        return int(value)


@dataclass
class ValOptions:
    """`val:` — what validation (during training) and tools/eval.py run on, and how."""

    dataset: str = "val"            # the `datasets:` entry to validate on ("" = no validation)
    best_metric: str = ""           # metric name (as `name` in `metrics:`, e.g. psnr, ssim3d) that picks `best`;
                                    # "" = the first metric
    max_images: int = 0             # validate on the first N images only (0 = all)
    tile: int = 0                   # restore in tiles of this size (0 = whole image); needs the tiling module
    tile_overlap: int = 32          # overlap between tiles (smooth blending), pixels
    grids: bool = False             # HINet's test-time 'grids': tiles of `tile` px placed as upstream, mean blend
    save_images: int = 0            # save restored + side-by-side (input | output | gt) for the first N images
    self_ensemble: bool = False     # average the 8 dihedral transforms (MIMO-UNet++ style); 8x slower
    backend: str = "auto"           # validation during training (tools/eval.py has --backend): auto | dygraph |
                                    # paddle | onnxruntime; auto compiles the network (Paddle Inference + oneDNN)
                                    # when a validation has enough work to pay the compile back, else dygraph

    def check(self, source: str = "val") -> "ValOptions":
        def bad(key, why):
            return ConfigError(f"{source}: val.{key} {why}")

        for key in ("max_images", "tile", "tile_overlap", "save_images"):
            if getattr(self, key) < 0:
                raise bad(key, f"must be >= 0, got {getattr(self, key)}")
        if self.backend not in NETWORK_BACKENDS:
            raise bad("backend", f"must be one of {', '.join(NETWORK_BACKENDS)}, got {self.backend!r}")
        if self.grids and self.tile <= 0:
            raise bad("grids", "needs val.tile (the crop size; HINet uses 256)")
        if self.tile and self.tile_overlap >= self.tile and not self.grids:
            raise bad("tile_overlap", f"({self.tile_overlap}) must be smaller than val.tile ({self.tile})")
        return self


@dataclass
class ExportSection:
    """`export:` — the defaults tools/export_model.py records in inference.yml (its flags override them)."""

    rounding: str = None            # "nearest" or "half_up"; default: the network's (ModelFacts.rounding)
    input_shape: list = None        # fixed [N, C, H, W] for accelerators; default dynamic
    tile: int = 0                   # default tile size the runners use (0: whole image)
    tile_overlap: int = None        # default: the network's (ModelFacts.tile_overlap)


# section name -> its dataclass: what `ppir.config` checks the plain sections against
SECTIONS = {"train": TrainOptions, "val": ValOptions, "export": ExportSection}


def options_from(cfg, section: str, cls):
    """The dataclass for a config section (missing section = all defaults), checked."""
    body = cfg.get(section) or {}
    names = {f.name for f in dataclasses.fields(cls)}
    opts = cls(**{k: v for k, v in body.items() if k in names})
    return opts.check(getattr(cfg, "source", section))
