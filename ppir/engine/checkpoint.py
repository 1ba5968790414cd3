"""Training checkpoints: written atomically, read without executing anything from the files.

Layout under the run's output_dir::

    checkpoints/iter_00001000/      one folder per checkpoint (the newest `keep_last` are kept)
        model.pdparams              the network's state dict (paddle.save; `ppir.load_weights` reads it)
        optimizer.pdopt             optimizer accumulators, keyed by the parameter's structured name
        state.json                  iteration, epoch, best metric, lr-schedule step, AMP scaler, the RNG states
    latest -> checkpoints/iter_00001000   relative symlinks, swapped atomically
    best   -> checkpoints/iter_00000500   (the best checkpoint is never pruned)

Atomicity: a checkpoint folder is written as `checkpoints/.tmp-*`, every file and the folder fsynced, then
renamed to its final name in one step; `latest`/`best` are replaced by renaming a new symlink over the old
one. A crash (even SIGKILL) at any moment leaves the previous `latest` complete; leftover `.tmp-*` folders
are removed at the next save.

Safety: `.pdparams`/`.pdopt` are read with `ppir.convert.paddle_pickle.read_paddle_pdparams` (a restricted
unpickler that only rebuilds numpy arrays) and everything else is JSON. Optimizer accumulators are stored
under the parameter's structured name (`encoder.0.weight/moment1_0`), not paddle's global tensor name
(`conv2d_7.w_0`), so a checkpoint fits the same network built in any order or process.

RNG states in JSON: Python `random.getstate()` as lists; numpy's global `bit_generator` state dict (key
array as a list); paddle's CPU (and, on GPU, device) generators through `GeneratorState.__getstate__()`,
a tuple `(device, seed, offset, engine)` whose engine is the mt19937_64 state as a list of byte values,
stored as a latin-1 string and rebuilt with `GeneratorState.__setstate__`.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time

import numpy as np
from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
import paddle

from ..convert.paddle_pickle import read_paddle_pdparams
from ..errors import CheckpointError

MODEL_FILE = "model.pdparams"
OPTIM_FILE = "optimizer.pdopt"
STATE_FILE = "state.json"
CKPT_DIR = "checkpoints"
FORMAT = "ppir-checkpoint-1"


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


_DIR_MODE = 0o777 & ~_umask()  # mkdtemp makes 0700 folders; checkpoints get the usual permissions


# ------------------------------------------------------------------------------------------------ RNG states
def _encode(value):
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 256 for v in value) \
                and len(value) > 64:
            return {"latin1": bytes(value).decode("latin1")}
        return [_encode(v) for v in value]
    if isinstance(value, bytes):
        return {"latin1": value.decode("latin1"), "bytes": True}
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint state")


def _decode(value):
    if isinstance(value, dict) and "latin1" in value:
        raw = value["latin1"].encode("latin1")
        return raw if value.get("bytes") else list(raw)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _paddle_states(device=None) -> list:
    return [_encode(s.__getstate__()) for s in paddle.get_rng_state(device)]


def _set_paddle_states(encoded: list, device=None) -> None:
    current = paddle.get_rng_state(device)
    if len(current) != len(encoded):
        raise CheckpointError(f"the checkpoint holds {len(encoded)} paddle generator state(s) for "
                              f"{device or 'the device'}, this process has {len(current)}")
    states = []
    for cur, enc in zip(current, encoded):
        st = type(cur).__new__(type(cur))
        st.__setstate__(tuple(_decode(enc)))
        states.append(st)
    paddle.set_rng_state(states, device)


def rng_state() -> dict:
    """Every RNG a training process uses, as JSON-ready data."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    np_state = {**np_state, "state": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                      for k, v in np_state["state"].items()}}
    out = {"python": [version, list(internal), gauss], "numpy": np_state, "paddle_cpu": _paddle_states("cpu")}
    place = paddle.get_device()
    if place != "cpu":
        out["paddle_device"] = {"device": place, "states": _paddle_states()}
    return out


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state()` returned."""
    try:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        np_state = dict(state["numpy"])
        np_state["state"] = {k: (np.asarray(v, dtype=np.uint32) if k == "key" else v)
                             for k, v in np_state["state"].items()}
        np.random.set_state(np_state)
        _set_paddle_states(state["paddle_cpu"], "cpu")
        dev = state.get("paddle_device")
        if dev and paddle.get_device() != "cpu":
            _set_paddle_states(dev["states"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint RNG state is damaged: {type(e).__name__}: {e}") from None


# ------------------------------------------------------------------------------------------ optimizer state
def _param_names(model: paddle.nn.Layer) -> dict:
    """paddle tensor name -> structured name (first one, for shared parameters)."""
    out = {}
    for structured, p in model.named_parameters():
        out.setdefault(p.name, structured)
    return out


def optimizer_state(optimizer, model) -> dict:
    """The optimizer's accumulators keyed '<structured name>/<accumulator>' (+ 'master_weights/<name>')."""
    names = _param_names(model)
    by_len = sorted(names, key=len, reverse=True)
    out = {}
    for key, value in optimizer.state_dict().items():
        if key == "LR_Scheduler":
            continue  # the engine keeps the schedule step in state.json
        if key == "master_weights":
            for pname, t in value.items():
                out[f"master_weights/{names.get(pname, pname)}"] = t
            continue
        if not isinstance(value, paddle.Tensor):
            continue
        owner = next((p for p in by_len if key.startswith(p + "_")), None)
        if owner is None:
            raise CheckpointError(f"optimizer state {key!r} belongs to no parameter of the model")
        out[f"{names[owner]}/{key[len(owner) + 1:]}"] = value
    return out


def load_optimizer_state(optimizer, model, arrays: dict, path: str) -> None:
    names = {structured: pname for pname, structured in _param_names(model).items()}
    state, master = {}, {}
    for key, arr in arrays.items():
        if key.startswith("master_weights/"):
            sname = key[len("master_weights/"):]
            if sname not in names:
                raise CheckpointError(f"{path}: master weight for unknown parameter {sname!r}")
            master[names[sname]] = paddle.to_tensor(arr)
            continue
        sname, _, suffix = key.rpartition("/")
        if sname not in names:
            raise CheckpointError(f"{path}: optimizer state for {sname!r}, which the model does not have")
        state[f"{names[sname]}_{suffix}"] = paddle.to_tensor(arr)
    if master:
        state["master_weights"] = master
    lr = getattr(optimizer, "_learning_rate", None)
    if isinstance(lr, paddle.optimizer.lr.LRScheduler):
        # paddle insists on a schedule state here; the engine sets the real step afterwards (state.json)
        state["LR_Scheduler"] = lr.state_dict()
    optimizer.set_state_dict(state)


# ------------------------------------------------------------------------------------------------- writing
def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _replace_link(link: str, target: str) -> None:
    """Point `link` at `target` (relative) atomically: a new symlink renamed over the old one."""
    folder = os.path.dirname(link)
    if os.path.isdir(link) and not os.path.islink(link):
        raise CheckpointError(f"{link} is a folder, not the symlink ppir maintains; move it away")
    tmp = os.path.join(folder, f".tmp-link-{os.getpid()}-{os.path.basename(link)}")
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(os.path.relpath(target, folder), tmp)
    os.replace(tmp, link)


def checkpoint_name(iteration: int) -> str:
    return f"iter_{iteration:08d}"


class CheckpointManager:
    """Saves and prunes the checkpoints of one run (call only on rank 0)."""

    def __init__(self, output_dir: str, keep_last: int = 3):
        self.output_dir = os.path.abspath(output_dir)
        self.ckpt_dir = os.path.join(self.output_dir, CKPT_DIR)
        self.keep_last = int(keep_last)

    @property
    def latest(self) -> str:
        return os.path.join(self.output_dir, "latest")

    @property
    def best(self) -> str:
        return os.path.join(self.output_dir, "best")

    def _clean_tmp(self) -> None:
        if not os.path.isdir(self.ckpt_dir):
            return
        for name in os.listdir(self.ckpt_dir):
            if name.startswith(".tmp-") or name.startswith(".old-"):
                shutil.rmtree(os.path.join(self.ckpt_dir, name), ignore_errors=True)

    def save(self, iteration: int, model, optimizer, state: dict, is_best: bool = False) -> str:
        """Write checkpoint `iteration` atomically, point `latest` (and `best`) at it, prune old ones."""
        os.makedirs(self.ckpt_dir, exist_ok=True)
        self._clean_tmp()
        final = os.path.join(self.ckpt_dir, checkpoint_name(iteration))
        tmp = tempfile.mkdtemp(prefix=f".tmp-{checkpoint_name(iteration)}-", dir=self.ckpt_dir)
        try:
            os.chmod(tmp, _DIR_MODE)
            paddle.save(model.state_dict(), os.path.join(tmp, MODEL_FILE))
            paddle.save(optimizer_state(optimizer, model), os.path.join(tmp, OPTIM_FILE))
            body = {"format": FORMAT, "iteration": int(iteration), "saved_at": time.time(), **state}
            with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
                json.dump(body, f, allow_nan=True)
            for name in (MODEL_FILE, OPTIM_FILE, STATE_FILE):
                _fsync_file(os.path.join(tmp, name))
            _fsync_dir(tmp)
            if os.path.lexists(final):  # the same iteration saved again (e.g. a re-run): swap it out
                old = tempfile.mkdtemp(prefix=".old-", dir=self.ckpt_dir)
                os.replace(final, os.path.join(old, "x"))
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.ckpt_dir)
        _replace_link(self.latest, final)
        if is_best:
            _replace_link(self.best, final)
        _fsync_dir(self.output_dir)
        self.prune()
        self._clean_tmp()
        return final

    def prune(self) -> None:
        if self.keep_last <= 0 or not os.path.isdir(self.ckpt_dir):
            return
        protected = {os.path.realpath(p) for p in (self.latest, self.best) if os.path.lexists(p)}
        numbered = sorted(n for n in os.listdir(self.ckpt_dir) if n.startswith("iter_"))
        for name in numbered[:-self.keep_last]:
            path = os.path.join(self.ckpt_dir, name)
            if os.path.realpath(path) not in protected:
                shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- reading
def resolve_checkpoint(path: str) -> str:
    """A checkpoint folder from what a user passes: the folder, a `latest`/`best` link, or a run's output_dir."""
    path = os.fspath(path)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, STATE_FILE)):
        if os.path.isdir(os.path.join(path, "latest")):
            path = os.path.join(path, "latest")
    if not os.path.isdir(path):
        raise CheckpointError(f"no checkpoint at {path} (expected a folder with {STATE_FILE}, {MODEL_FILE} "
                              f"and {OPTIM_FILE}, e.g. <output_dir>/latest)")
    for name in (STATE_FILE, MODEL_FILE, OPTIM_FILE):
        if not os.path.isfile(os.path.join(path, name)):
            raise CheckpointError(f"{path}: incomplete checkpoint, {name} is missing")
    return os.path.realpath(path)


def _missing_file(folder: str) -> str | None:
    """The first checkpoint file `folder` lacks (None when it is a complete checkpoint)."""
    return next((n for n in (STATE_FILE, MODEL_FILE, OPTIM_FILE) if not os.path.isfile(os.path.join(folder, n))),
                None)


def newest_complete_checkpoint(output_dir: str) -> str | None:
    """The highest-numbered complete folder in `<output_dir>/checkpoints` (None when there is none)."""
    folder = os.path.join(output_dir, CKPT_DIR)
    names = sorted((n for n in os.listdir(folder) if n.startswith("iter_")), reverse=True) \
        if os.path.isdir(folder) else []
    return next((os.path.join(folder, n) for n in names if _missing_file(os.path.join(folder, n)) is None), None)


def _run_dir_of(path: str) -> tuple[str | None, bool]:
    """(the run's output_dir that `path` belongs to or is, whether `path` named the run rather than one
    checkpoint folder): a run dir or its `latest` link stand for "the newest checkpoint"."""
    path = os.path.abspath(path)
    if os.path.basename(path) == "latest":
        return os.path.dirname(path), True
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, STATE_FILE)) and \
            os.path.basename(os.path.dirname(path)) != CKPT_DIR:
        return path, True
    if os.path.basename(os.path.dirname(path)) == CKPT_DIR:
        return os.path.dirname(os.path.dirname(path)), False
    if os.path.basename(path) == "best":
        return os.path.dirname(path), False
    return None, False


def find_resume_checkpoint(path: str) -> tuple[str, str | None]:
    """The checkpoint `--resume <path>` continues from, and a warning when it is not the one `path` names.

    `path` naming a run (its output_dir or its `latest` link) whose `latest` is missing, dangling (the folder
    was deleted) or incomplete falls back to the newest complete checkpoint of the run, with a warning. A
    checkpoint folder named explicitly must be complete; the error then names the newest complete one."""
    path = os.fspath(path)
    run_dir, names_run = _run_dir_of(path)
    asked = os.path.join(run_dir, "latest") if names_run else path
    if os.path.isdir(asked) and _missing_file(asked) is None:
        return os.path.realpath(asked), None
    if os.path.islink(asked) and not os.path.exists(asked):
        why = f"{asked} points to {os.readlink(asked)}, which no longer exists"
    elif not os.path.lexists(asked):
        why = f"there is no {asked}"
    elif not os.path.isdir(asked):
        why = f"{asked} is not a checkpoint folder"
    else:
        why = f"{asked} is an incomplete checkpoint ({_missing_file(asked)} is missing)"
    newest = newest_complete_checkpoint(run_dir) if run_dir else None
    if newest is None:
        tail = f", and {os.path.join(run_dir, CKPT_DIR)} holds no complete checkpoint" if run_dir else ""
        raise CheckpointError(f"nothing to resume: {why}{tail}; start the run without --resume")
    if not names_run:
        raise CheckpointError(f"{why}; the newest complete checkpoint of that run is {newest} "
                              f"(pass it to --resume)")
    return os.path.realpath(newest), f"warning: {why}; resuming from the newest complete checkpoint {newest}"


def read_state(path: str) -> dict:
    path = resolve_checkpoint(path)
    file = os.path.join(path, STATE_FILE)
    try:
        with open(file, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{file}: cannot read: {e}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{file}: not a ppir training checkpoint (format {state.get('format')!r})"
                              if isinstance(state, dict) else f"{file}: not a ppir training checkpoint")
    return state


def load_model_state(model, path: str) -> None:
    """Load a checkpoint's weights into `model` strictly (same network and width)."""
    path = resolve_checkpoint(path)
    file = os.path.join(path, MODEL_FILE)
    arrays = read_paddle_pdparams(file)
    own = model.state_dict()
    missing = sorted(set(own) - set(arrays))
    unexpected = sorted(set(arrays) - set(own))
    bad = sorted(k for k in set(own) & set(arrays) if list(own[k].shape) != list(arrays[k].shape))
    if missing or unexpected or bad:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", bad)):
            if keys:
                parts.append(f"{len(keys)} {what} (e.g. {keys[0]})")
        raise CheckpointError(f"{file} does not fit {type(model).__name__}: {', '.join(parts)}; "
                              f"is it the same config?")
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in arrays.items()})


def load_checkpoint(path: str, model, optimizer=None) -> dict:
    """Load weights (and optimizer accumulators) from a checkpoint folder; returns its state.json dict.

    RNG states are NOT applied here; call `set_rng_state(state['rng'])` when the run is ready to continue.
    """
    path = resolve_checkpoint(path)
    state = read_state(path)
    load_model_state(model, path)
    if optimizer is not None:
        file = os.path.join(path, OPTIM_FILE)
        load_optimizer_state(optimizer, model, read_paddle_pdparams(file), file)
    state["path"] = path
    return state
