"""The training loop: exact determinism, exact resume, validation with best-checkpoint tracking.

Sample order and augmentation never touch a global RNG. The run is a stream of samples numbered k = 0, 1,
2, ...; step `it` consumes samples ``it * batch_size ... (it + 1) * batch_size - 1`` (rank r of W takes the
r-th slice of batch_size / W of them), and sample k is

    dataset.sample(order(k // N)[k % N], np.random.default_rng([seed, 0, k]))     N = len(dataset)

with ``order(e) = np.random.default_rng([seed, 1, e]).permutation(N)`` (a fresh shuffle per epoch; the
stream runs across epoch boundaries, so every step has a full batch). MixUp at step `it` draws from
``default_rng([seed, 2, it, rank])``. The middle number keeps the three streams apart (with plain
``[seed, k]`` and ``[seed, e]`` epoch 5's shuffle and sample 5's augmentation would share a generator).
So what a step sees depends only on (seed, batch_size, dataset, step) — not on num_workers, and not on
whether the run was interrupted: `--resume` restores weights, optimizer moments, the schedule step (a closed
form of the step count), the AMP scaler and paddle's generator (dropout) and continues at the next step.

Several GPUs: `python -m paddle.distributed.launch --gpus 0,1 tools/train.py -c ...`. batch_size is the
total over all ranks; gradients are averaged by paddle.DataParallel; only rank 0 logs, validates and writes
checkpoints (every rank reads them on resume, so output_dir must be on a shared filesystem).

A non-finite loss stops the run before the step is applied (nothing is saved after it, so `latest` is the last
good checkpoint); a checkpoint whose weights are not finite is never written.
"""
from __future__ import annotations

import math
import os
import random
import warnings

import numpy as np
from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
import paddle
import yaml

from ..models.build import build_model
from ..config import Config, load_config, require_sections
from ..data import build_dataset
from ..data.transforms import mixup
from ..errors import ConfigError, DatasetError, PPIRError
from ..losses import build_loss
from ..metrics import MetricSet
from ..models.common import input_channels, shape_problem
from ..paths import output_dir_problem, write_text
from ..sections import TrainOptions, ValOptions, options_from
from ..weights import load_weights, save_weights
from .checkpoint import CheckpointManager, find_resume_checkpoint, load_checkpoint, rng_state, set_rng_state
from .logging import TrainLogger, drop_metrics_after
from .optim import build_optimizer_spec, build_scheduler, grad_clip
from .run_folder import RunLock, check_new_run

STREAM_SAMPLE, STREAM_ORDER, STREAM_MIXUP, STREAM_PADDLE = 0, 1, 2, 3


class TrainingError(PPIRError):
    """The run cannot go on (the loss diverged); the last good checkpoint is kept."""

    exit_code = 1


# ------------------------------------------------------------------------------------------- sample stream
class SampleStream(paddle.io.Dataset):
    """Maps the run's global sample number k to a training sample (see the module docstring)."""

    def __init__(self, dataset, seed: int):
        super().__init__()
        self.dataset = dataset
        self.seed = int(seed)
        self.n = len(dataset)
        if self.n == 0:
            raise DatasetError(f"the training dataset {type(dataset).__name__} is empty")
        self._orders: dict[int, np.ndarray] = {}

    def order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            if len(self._orders) > 2:
                self._orders.pop(min(self._orders))
            self._orders[epoch] = np.random.default_rng([self.seed, STREAM_ORDER, epoch]).permutation(self.n)
        return self._orders[epoch]

    def index_of(self, k: int) -> int:
        epoch, pos = divmod(int(k), self.n)
        return int(self.order(epoch)[pos])

    def __getitem__(self, k):
        s = self.dataset.sample(self.index_of(k), np.random.default_rng([self.seed, STREAM_SAMPLE, int(k)]))
        return s["lq"], s["gt"]

    def __len__(self) -> int:
        return 1 << 62  # unbounded: the batch sampler says which k to load


class StreamBatchSampler:
    """Yields, for steps start..total-1, the sample numbers this rank loads: a batch_sampler for DataLoader."""

    def __init__(self, start_iter: int, total_iters: int, batch_size: int, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ConfigError(f"train.batch_size ({batch_size}) must be divisible by the number of devices "
                              f"({world_size})")
        self.start, self.total = int(start_iter), int(total_iters)
        self.batch_size, self.rank, self.world = int(batch_size), int(rank), int(world_size)
        self.per_rank = self.batch_size // self.world

    def indices(self, it: int) -> list[int]:
        first = it * self.batch_size + self.rank * self.per_rank
        return list(range(first, first + self.per_rank))

    def __iter__(self):
        for it in range(self.start, self.total):
            yield self.indices(it)

    def __len__(self) -> int:
        return max(0, self.total - self.start)


def _die_with_parent(_worker_id: int) -> None:
    """DataLoader worker init: on Linux, ask the kernel to kill this worker when the trainer dies (even by
    SIGKILL), so no orphaned workers are left behind; elsewhere a no-op."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _collate(batch):
    lq = [b[0] for b in batch]
    gt = [b[1] for b in batch]
    shapes = {x.shape for x in lq} | {x.shape for x in gt}
    if len(shapes) != 1:
        raise ValueError(f"training samples of different sizes in one batch ({sorted(shapes)}); set "
                         f"patch_size on the training dataset")
    return np.stack(lq), np.stack(gt)


# ------------------------------------------------------------------------------------------ initialisation
_CONVS = (paddle.nn.Conv1D, paddle.nn.Conv2D, paddle.nn.Conv3D, paddle.nn.Conv1DTranspose,
          paddle.nn.Conv2DTranspose, paddle.nn.Conv3DTranspose)


def init_like_torch(model: paddle.nn.Layer) -> int:
    """Re-initialise conv and linear layers as PyTorch's defaults do; returns how many layers were set.

    The official MIRNet/HINet/MIMO-UNet recipes train from PyTorch's default initialisation: weights
    ~ U(-b, b) with b = 1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5)) and biases ~ U(-b, b). Paddle's
    default (conv weights ~ N(0, 2/fan_in), zero biases) is about 2.4x larger per layer, which these deep
    residual networks amplify: at init a full MIRNet's output is off by ~1e11, HINet's by ~1e2, and training
    from scratch fails. fan_in = weight.shape[1] * kernel area for convolutions and transposed convolutions
    (Paddle and PyTorch share that layout) and weight.shape[0] for Linear ([in, out] in Paddle). PReLU (0.25)
    and InstanceNorm (1, 0) defaults already agree. Draws from paddle's generator, so `paddle.seed` fixes it.
    """
    count = 0
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, _CONVS):
            fan_in = int(np.prod(layer.weight.shape[1:]))
        elif isinstance(layer, paddle.nn.Linear):
            fan_in = int(layer.weight.shape[0])
        else:
            continue
        bound = 1.0 / math.sqrt(max(1, fan_in))
        w = layer.weight
        w.set_value(paddle.uniform(w.shape, dtype=w.dtype, min=-bound, max=bound))
        bias = getattr(layer, "bias", None)
        if bias is not None:
            bias.set_value(paddle.uniform(bias.shape, dtype=bias.dtype, min=-bound, max=bound))
        count += 1
    return count


def _device(world_size: int) -> str:
    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        dev_id = paddle.distributed.ParallelEnv().device_id if world_size > 1 else 0
        return f"gpu:{dev_id}"
    return "cpu"


def _inner(model):
    return model._layers if isinstance(model, paddle.DataParallel) else model


def _params_finite(model) -> bool:
    for p in _inner(model).parameters():
        if not bool(paddle.isfinite(p).all()):
            return False
    return True


# ------------------------------------------------------------------------------------------------- trainer
class Trainer:
    """Builds everything a config's training needs and runs it: ``Trainer(cfg).train()``.

    `resume`: a checkpoint folder (or a run's output_dir, or True for `<output_dir>/latest`).
    """

    def __init__(self, cfg, resume=None, progress: bool = True):
        self.cfg = cfg if isinstance(cfg, Config) else load_config(cfg)
        require_sections(self.cfg, ("model", "datasets", "loss", "train"), "training")
        self.opt = options_from(self.cfg, "train", TrainOptions)
        self.vopt = options_from(self.cfg, "val", ValOptions)
        self.progress = progress
        self._resuming = bool(resume)
        # The order matters: cheap checks first (a missing dataset or a bad output folder is reported before
        # anything slow), and the seeding inside _setup_model must come before anything that draws from paddle.
        self._setup_processes()
        self._setup_data()
        self._setup_model()
        self._setup_objectives()
        self._setup_optimisation()
        self._setup_state(resume)
        self._setup_execution()

    # ------------------------------------------------------------------ setup, in the order __init__ runs it
    def _setup_processes(self) -> None:
        """Ranks, the device, and whether rank 0 can write the output folder."""
        o = self.opt
        self.world = paddle.distributed.get_world_size()
        if self.world > 1:
            paddle.distributed.init_parallel_env()
        self.rank = paddle.distributed.get_rank()
        self.is_main = self.rank == 0
        if o.batch_size % self.world:
            raise ConfigError(f"train.batch_size ({o.batch_size}) is the total over all devices and must be "
                              f"divisible by their number ({self.world})")
        self.device = _device(self.world)
        paddle.set_device(self.device)
        if o.deterministic and self.device != "cpu":
            paddle.set_flags({"FLAGS_cudnn_deterministic": True})
        self.output_dir = os.path.abspath(o.output_dir)
        problem = output_dir_problem(self.output_dir) if self.is_main else None
        if problem:  # found now, not as an OSError after the first steps
            raise ConfigError(f"{self.cfg.origin('train.output_dir')}: train.output_dir: {problem}")
        self._lock = RunLock(self.output_dir) if self.is_main else None
        if self.is_main:  # only look: the lock is taken when the loop starts (a Trainer built for its model
            # writes nothing)
            self._lock.check()
            if not self._resuming:
                check_new_run(self.output_dir, f"{self.cfg.origin('train.output_dir')}: train.output_dir")

    def _setup_data(self) -> None:
        """The training and validation sets, the sample stream, and the run's length and intervals in steps."""
        o, cfg = self.opt, self.cfg
        self.train_set = build_dataset(cfg, "train")
        self.val_set = None
        if self.vopt.dataset and (cfg.get("datasets") or {}).get(self.vopt.dataset):
            self.val_set = build_dataset(cfg, self.vopt.dataset)
        self.stream = SampleStream(self.train_set, o.seed)
        self.n_train = len(self.train_set)
        self.iters_per_epoch = max(1, math.ceil(self.n_train / o.batch_size))
        self.total_iters = o.total_iters(self.iters_per_epoch)
        self.val_every = o.interval_iters(o.val_interval, self.iters_per_epoch)
        self.save_every = o.interval_iters(o.save_interval, self.iters_per_epoch)

    def _setup_model(self) -> None:
        """Seed every global RNG from train.seed, then build the network, initialise it and load pretrained weights."""
        o = self.opt
        random.seed(o.seed)
        np.random.seed(o.seed % (1 << 32))
        paddle.seed(o.seed)
        self.model = build_model(self.cfg)
        self._check_patch_size()
        if o.init == "torch":
            init_like_torch(self.model)
        self._pretrained_note = ""
        if o.pretrained:
            report = load_weights(self.model, o.pretrained)
            self._pretrained_note = f"loaded pretrained weights {o.pretrained} ({report.description})"

    def _setup_objectives(self) -> None:
        """The loss, the validation metrics and the one that picks `best`; then a paddle stream per rank."""
        cfg = self.cfg
        self.loss_fn = build_loss(cfg["loss"], cfg.source)
        self.metrics = MetricSet(cfg.get("metrics") or [{"type": "PSNR"}], cfg.source)
        self.best_name = self.vopt.best_metric or self.metrics.names[0]
        if self.best_name not in self.metrics.names:
            raise ConfigError(f"{cfg.source}: val.best_metric {self.best_name!r} is not one of the metrics "
                              f"({', '.join(self.metrics.names)})")
        best_metric = self.metrics.metrics[self.metrics.names.index(self.best_name)]
        self.higher_better = bool(getattr(best_metric, "higher_is_better", True))
        # dropout etc.: a different paddle stream per rank (after initialisation, which every rank shares)
        paddle.seed(int(np.random.SeedSequence([self.opt.seed, STREAM_PADDLE, self.rank]).generate_state(1)[0]))

    def _setup_optimisation(self) -> None:
        """AMP (float32 on CPU, with a note), the optimizer, the learning-rate schedule and the loss scaler."""
        o, cfg = self.opt, self.cfg
        self.amp = bool(o.amp)
        self._amp_note = ""
        if self.amp and self.device == "cpu":
            self.amp = False
            self._amp_note = ("AMP requested (train.amp / --amp) but this is a CPU run: AMP needs a GPU, "
                              "training in float32 instead")
        spec = build_optimizer_spec(cfg.get("optimizer"), cfg.source)
        self.base_lr = spec.lr
        self.scheduler = build_scheduler(cfg.get("lr_scheduler"), spec.lr, self.total_iters, self.iters_per_epoch,
                                         cfg.source)
        o2 = self.amp and o.amp_level == "O2"
        self.optimizer = spec.build(self.model.parameters(), self.scheduler, grad_clip(o.grad_clip_norm),
                                    multi_precision=o2)
        if o2:
            self.model, self.optimizer = paddle.amp.decorate(models=self.model, optimizers=self.optimizer,
                                                             level="O2", dtype=o.amp_dtype)
        self.scaler = None
        if self.amp and o.amp_dtype == "float16":
            self.scaler = paddle.amp.GradScaler(init_loss_scaling=2.0 ** 16)

    def _setup_state(self, resume) -> None:
        """Where the run starts: step 0 and no best yet, or everything a checkpoint holds (`_resume`)."""
        self.start_iter = 0
        self.best = {"metric": self.best_name, "value": None, "iter": None}
        self.input_metrics = None
        self.val_backend = None  # chosen at the first validation of a run (validation_backend), then kept
        self.resumed_from = None
        self._resume_notes = []
        if resume:
            self._resume(self.output_dir if resume is True else resume)

    def _setup_execution(self) -> None:
        """How the forward runs (eager or a static program, one process or DataParallel) and who checkpoints."""
        if self.opt.engine == "to_static":
            # The same Layer object, its forward converted: parameters, state_dict and checkpoints are
            # unchanged, so resume and export see no difference. A program is traced per input shape and mode.
            self.model = paddle.jit.to_static(self.model, full_graph=True)
        if self.world > 1:
            self.model = paddle.DataParallel(self.model)
        self.ckpt = CheckpointManager(self.output_dir, self.opt.keep_last) if self.is_main else None

    def _check_patch_size(self) -> None:
        """Training patches the network cannot take fail inside the first step; refuse them here instead."""
        size = int(getattr(self.train_set, "patch_size", 0) or 0)
        problem = size and shape_problem(self.model, [1, input_channels(self.model), size, size])
        if problem:
            key = "datasets.train.patch_size"
            raise ConfigError(f"{self.cfg.origin(key)}: {key}={size} gives {size}x{size} training patches: {problem}")

    # ------------------------------------------------------------------ resume
    def _resume(self, path) -> None:
        path, note = find_resume_checkpoint(path)
        self._resume_notes = [note] if note else []
        state = load_checkpoint(path, self.model, self.optimizer)
        it = int(state["iteration"])
        run = state.get("run", {})
        for key, now in (("batch_size", self.opt.batch_size), ("seed", self.opt.seed),
                         ("train_samples", self.n_train)):
            if key in run and run[key] != now:
                self._resume_notes.append(f"warning: {key} was {run[key]} in the checkpoint, now {now}: the run "
                                          f"continues but will not replay an uninterrupted one exactly")
        if "total_iters" in run and run["total_iters"] != self.total_iters:
            # the schedule is a closed form of (step, total length): a new length reshapes the rest of it
            self._resume_notes.append(
                f"warning: the run was {run['total_iters']} iterations long in the checkpoint, now "
                f"{self.total_iters} (train.iters / train.epochs): the learning-rate schedule is stretched to the "
                f"new length, so the run continues but will not replay an uninterrupted one exactly")
        self.scheduler.seek(it)
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.best = state.get("best") or self.best
        if self.best.get("metric") != self.best_name:
            self.best = {"metric": self.best_name, "value": None, "iter": None}
        self.input_metrics = state.get("input_metrics")
        rngs = state.get("rng") or []
        if len(rngs) == self.world:
            set_rng_state(rngs[self.rank])
        else:
            self._resume_notes.append(f"warning: the checkpoint has RNG states for {len(rngs)} process(es), this "
                                      f"run has {self.world}: dropout will not replay exactly")
            if rngs:
                set_rng_state(rngs[0])
        self.start_iter = it
        self.resumed_from = path

    # ------------------------------------------------------------------ helpers
    def _state(self) -> dict:
        rng = rng_state()
        if self.world > 1:
            gathered = []
            paddle.distributed.all_gather_object(gathered, rng)
            rng = gathered
        else:
            rng = [rng]
        return {"epoch": self.scheduler.last_epoch / self.iters_per_epoch, "schedule_step": self.scheduler.last_epoch,
                "best": self.best, "input_metrics": self.input_metrics, "rng": rng,
                "scaler": ({k: (v.tolist() if isinstance(v, np.ndarray) else v)
                            for k, v in self.scaler.state_dict().items()} if self.scaler is not None else None),
                "run": {"batch_size": self.opt.batch_size, "seed": self.opt.seed, "train_samples": self.n_train,
                        "world_size": self.world, "total_iters": self.total_iters,
                        "iters_per_epoch": self.iters_per_epoch},
                "config": dict(self.cfg)}

    def _save(self, done: int, is_best: bool = False) -> None:
        """Collective (every rank gathers its RNG state); rank 0 writes."""
        if not _params_finite(self.model):
            raise TrainingError(f"the weights became NaN/inf by iteration {done}; not saving them. The last good "
                                f"checkpoint is {os.path.join(self.output_dir, 'latest')}. Lower the learning "
                                f"rate or set train.grad_clip_norm")
        state = self._state()
        if self.is_main:
            self.ckpt.save(done, _inner(self.model), self.optimizer, state, is_best=is_best)

    def _validate(self, done: int, log: TrainLogger) -> bool:
        """Rank 0 validates; returns whether this is a new best."""
        from .evaluator import evaluate, validation_backend

        v = self.vopt
        inner = _inner(self.model)
        if self.val_backend is None:  # decided from the config and the data only: a resumed run decides alike
            self.val_backend, why = validation_backend(inner, self.val_set, v.backend, v.max_images, v.self_ensemble)
            log.info(why)
        first = self.input_metrics is None
        res = evaluate(inner, self.val_set, self.metrics, tile=v.tile, tile_overlap=v.tile_overlap,
                       grids=v.grids, self_ensemble=v.self_ensemble, max_images=v.max_images, score_input=first,
                       save_dir=os.path.join(self.output_dir, "val_images", f"iter_{done:08d}"),
                       save_images=v.save_images, progress=False, backend=self.val_backend,
                       backend_notes=log.info)
        if first:
            self.input_metrics = res.input_metrics
        value = res.metrics[self.best_name]
        old = self.best.get("value")
        is_best = math.isfinite(value) and (old is None or (value > old if self.higher_better else value < old))
        if is_best:
            self.best = {"metric": self.best_name, "value": value, "iter": done}
        log.validation(done, done / self.iters_per_epoch, res.metrics, self.input_metrics, self.best, is_best,
                       res.seconds, res.count)
        self.last_val = res.metrics
        return is_best

    def _loader(self):
        sampler = StreamBatchSampler(self.start_iter, self.total_iters, self.opt.batch_size, self.rank, self.world)
        return paddle.io.DataLoader(self.stream, batch_sampler=sampler, num_workers=self.opt.num_workers,
                                    collate_fn=_collate, use_shared_memory=self.opt.num_workers > 0,
                                    worker_init_fn=_die_with_parent if self.opt.num_workers > 0 else None)

    def _write_config(self) -> None:
        path = os.path.join(self.output_dir, "config.yml")
        write_text(path, f"# resolved config of this run (from {self.cfg.source})\n"
                         + yaml.safe_dump(dict(self.cfg), sort_keys=False))

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict:
        """Run the loop. Any error ends the run with one line (also written to train.log while it can be):
        an OSError while writing outputs becomes a TrainingError naming the file and the last checkpoint."""
        self._done = self.start_iter
        if self._lock is not None:
            try:
                self._lock.acquire()  # one training per folder; a second one started meanwhile is refused here
            except OSError as e:
                raise self._write_failure(e) from None
            if not self.resumed_from:  # a run that finished into the folder since this Trainer was built
                try:
                    check_new_run(self.output_dir, "train.output_dir")
                except PPIRError:
                    self._lock.release()
                    raise
        try:
            return self._train()
        finally:
            if self._lock is not None:
                self._lock.release()

    def _train(self) -> dict:
        o = self.opt
        try:
            log = TrainLogger(self.output_dir, self.total_iters, self.start_iter, o.log_interval,
                              enabled=self.is_main, progress=self.progress)
            self._output_id = self._folder_id() if self.is_main else None  # only rank 0 writes (and made it)
        except OSError as e:
            raise self._write_failure(e) from None
        try:
            return self._run(log)
        except OSError as e:
            err = self._write_failure(e)
            log.error(str(err))
            raise err from None
        except PPIRError as e:
            log.error(str(e))
            raise
        finally:
            log.close()

    def _folder_id(self):
        st = os.stat(self.output_dir)
        return st.st_dev, st.st_ino

    def _check_output_dir(self) -> None:
        """Stop when the output folder was removed (or replaced) under the run: the writes would otherwise
        recreate it (VisualDL, the checkpoint writer) and quietly build a run without its earlier checkpoints."""
        try:
            same = self._folder_id() == self._output_id
        except FileNotFoundError:
            same = False
        if not same:
            raise TrainingError(f"the output folder {self.output_dir} was removed or replaced during training; "
                                f"training stopped after iteration {self._done} (the checkpoints and train.log "
                                f"in it went with it)")

    def _write_failure(self, e: OSError) -> TrainingError:
        what = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else f"{type(e).__name__}: {e}"
        latest = os.path.join(self.output_dir, "latest")
        return TrainingError(f"cannot write the run's outputs ({what}); training stopped after iteration "
                             f"{self._done}; the last complete checkpoint is {latest} (a checkpoint is written "
                             f"whole or not at all). Make {self.output_dir} writable, then --resume")

    def _run(self, log: TrainLogger) -> dict:
        o = self.opt
        self.last_val = None
        if self.is_main:
            self._write_config()
            log.info(f"config {self.cfg.source}: {type(_inner(self.model)).__name__}, "
                     f"{self.n_train} training samples, batch {o.batch_size} on {self.world} "
                     f"{'process' if self.world == 1 else 'processes'} ({self.device}"
                     f"{', forward as a static program' if o.engine == 'to_static' else ''}), "
                     f"{self.iters_per_epoch} iterations per epoch, {self.total_iters} iterations "
                     f"({self.total_iters / self.iters_per_epoch:.2f} epochs); lr: {self.scheduler.description}")
            for note in (self._pretrained_note, self._amp_note, *self._resume_notes):
                if note:
                    log.info(note)
            if self.resumed_from:
                log.info(f"resumed from {self.resumed_from} at iteration {self.start_iter}")
                # validations after the checkpoint are replayed by this run: keep them once, not twice
                dropped = drop_metrics_after(self.output_dir, self.start_iter)
                if dropped:
                    log.info(f"metrics.jsonl: dropped {dropped} record(s) after iteration {self.start_iter}, "
                             f"which this run replays")
            if self.val_set is None:
                log.info("no validation set (val.dataset names no datasets entry): `best` is not tracked")
        if self._amp_note and self.is_main:
            warnings.warn(self._amp_note, stacklevel=3)
        if self.start_iter >= self.total_iters:
            log.info(f"nothing to do: the checkpoint is at iteration {self.start_iter} of {self.total_iters}")
            return self._summary(log)
        self._loop(log)
        return self._summary(log)

    def _loop(self, log: TrainLogger) -> None:
        o = self.opt
        model, loss_fn, opt, scaler = self.model, self.loss_fn, self.optimizer, self.scaler
        model.train()
        mixup_from = o.mixup_start_epoch * self.iters_per_epoch
        amp_kwargs = dict(enable=self.amp, level=o.amp_level, dtype=o.amp_dtype)
        done = self.start_iter
        for it, (lq, gt) in zip(range(self.start_iter, self.total_iters), self._loader()):
            if o.mixup_alpha > 0 and it >= mixup_from:
                rng = np.random.default_rng([o.seed, STREAM_MIXUP, it, self.rank])
                lq, gt = mixup(lq, gt, rng, alpha=o.mixup_alpha)
            lr = self.scheduler.last_lr
            with paddle.amp.auto_cast(**amp_kwargs):
                pred = model(lq)
                loss = loss_fn(pred, gt)
            loss_value = self._global_loss(loss)
            if not math.isfinite(loss_value):
                raise TrainingError(
                    f"non-finite loss ({loss_value}) at iteration {it + 1} (lr {lr:.3g}); training stopped before "
                    f"applying that step. The last good checkpoint is "
                    f"{os.path.join(self.output_dir, 'latest')}. Lower the learning rate or set "
                    f"train.grad_clip_norm, then --resume")
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            opt.clear_grad()
            self.scheduler.step()
            done = self._done = it + 1
            log.step(done, loss_value, lr, done / self.iters_per_epoch)

            last = done == self.total_iters
            val_now = self.val_set is not None and ((self.val_every and done % self.val_every == 0) or last)
            save_now = val_now or last or (self.save_every and done % self.save_every == 0)
            if (val_now or save_now) and self.is_main:
                self._check_output_dir()
            is_best = False
            if val_now:
                if self.is_main:
                    is_best = self._validate(done, log)
                if self.world > 1:
                    paddle.distributed.barrier()
            if save_now:
                self._save(done, is_best=is_best)

    def _global_loss(self, loss) -> float:
        if self.world > 1:
            t = loss.detach().astype("float32").clone()
            paddle.distributed.all_reduce(t)
            return float(t) / self.world
        return float(loss)

    def _summary(self, log: TrainLogger) -> dict:
        out = {"output_dir": self.output_dir, "iterations": self.total_iters, "best": self.best,
               "last_val": self.last_val, "input_metrics": self.input_metrics, "seconds": log.elapsed()}
        if self.is_main:
            best = self.best
            # TIPC drivers evaluate/export `<output_dir>/<train_model_name>` and some expect a plain
            # `latest.pdparams` file there (not only the `latest` checkpoint folder).
            where = os.path.join(self.output_dir, "latest.pdparams")
            save_weights(_inner(self.model), where)
            msg = f"done: {self.total_iters} iterations in {log.elapsed():.1f}s; weights {where}"
            if best.get("value") is not None:
                msg += (f"; best {best['metric']} {best['value']:.4f} at iteration {best['iter']} "
                        f"({os.path.join(self.output_dir, 'best')})")
            log.info(msg)
        return out
