"""Read any weights file ppir accepts into a flat {name: numpy array}, without running code from it.

Accepted: Paddle `.pdparams`; PyTorch `torch.save` files (zip or legacy format, any extension: the official
HINet `.pth` {'params': ...}, MIMO-UNet `.pkl` {'model': ...}, MIRNet `.pth` {'state_dict': ...} with
`module.` prefixes); bare torch state dicts; `.npz` archives (also ppir's golden files, keys `param/<name>`).
The format is told from the file's bytes, not its extension (`sniff.py`); each format has its own reader
module (`torch_zip.py`, `torch_legacy.py`, `paddle_pickle.py`), and this one picks it and unwraps the result.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np

from ..errors import CheckpointError
from .paddle_pickle import read_paddle_pdparams
from .sniff import sniff
from .torch_legacy import read_torch_legacy
from .torch_zip import read_torch_zip

# Where official and common training scripts keep the network weights inside a checkpoint, in the order
# they are tried (BasicSR/HINet 'params', MIRNet 'state_dict', MIMO-UNet 'model').
WRAPPER_KEYS = ("params", "state_dict", "model", "params_ema", "net", "network", "model_state_dict", "weights")


@dataclass
class WeightsFile:
    state: dict          # name -> numpy array
    layout: str          # "torch" or "paddle": whose naming/layout conventions the names follow
    description: str     # e.g. "torch zip checkpoint, weights under 'params'"


def _is_array(v) -> bool:
    return isinstance(v, np.ndarray)


def _flatten_state(obj, path: str, param_key: str | None) -> tuple[dict, str]:
    """Find the flat name -> array mapping inside a checkpoint object."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    if obj and all(_is_array(v) for v in obj.values()):
        if param_key:
            raise CheckpointError(f"{path}: --param-key {param_key!r} given, but the file is a bare state dict")
        return dict(obj), "bare state dict"
    keys = [param_key] if param_key else [k for k in WRAPPER_KEYS if k in obj]
    for key in keys:
        inner = obj.get(key)
        if isinstance(inner, dict) and inner and all(_is_array(v) for v in inner.values()):
            return dict(inner), f"weights under {key!r}"
    top = ", ".join(repr(k) for k in list(obj)[:10])
    if param_key:
        raise CheckpointError(f"{path}: no state dict under {param_key!r}; top-level keys: {top}")
    raise CheckpointError(f"{path}: no state dict found (looked for a dict of tensors at the top or under "
                          f"{', '.join(WRAPPER_KEYS)}); top-level keys: {top}")


def _strip_module_prefix(state: dict) -> dict:
    """DataParallel checkpoints prefix every name with 'module.'; the networks themselves do not."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


# A .npz is read only when the arrays its members declare (their .npy headers) could come from the archive's
# bytes: float weights deflate to ~0.9 of their size (ppir's golden files: 1.1x over the archive), so more than
# this many times the file's size is a decompression bomb, refused before anything is inflated.
NPZ_MAX_EXPANSION = 64
NPZ_SLACK_BYTES = 16 << 20


def _npz_declared_bytes(path: str) -> int:
    """The bytes the arrays of a .npz declare in their headers (nothing but the headers is read)."""
    total = 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            total += int(np.prod(shape, dtype=object)) * dtype.itemsize
    return total


def _check_npz_size(path: str) -> None:
    size = os.path.getsize(path)
    try:
        declared = _npz_declared_bytes(path)
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read .npz archive: {' '.join(str(e).split())[:200]}") from None
    if declared > NPZ_MAX_EXPANSION * size + NPZ_SLACK_BYTES:
        raise CheckpointError(f"{path}: the .npz declares arrays of {declared / 2**20:.0f} MB in a file of "
                              f"{size / 2**20:.1f} MB (over {NPZ_MAX_EXPANSION}x): not weights but a decompression "
                              f"bomb or a damaged file; refused before reading")


def _read_npz(path: str) -> dict:
    _check_npz_size(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError as e:  # object arrays need pickle: refused
        raise CheckpointError(f"{path}: refused to load: the .npz holds pickled objects ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path}: cannot read .npz archive: {e}") from None
    if any(k.startswith("param/") for k in arrays):  # ppir golden fixtures: param/<name>, input/..., output/...
        arrays = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    return arrays


def resolve_weights_path(path: str) -> str:
    """The weights file a user (or a TIPC driver) means: the path as given, else with `.pdparams` appended
    (drivers pass `<save_dir>/latest`), else `model.pdparams` inside a checkpoint folder."""
    for cand in (path, path + ".pdparams", os.path.join(path, "model.pdparams")):
        if os.path.isfile(cand):
            return cand
    raise CheckpointError(f"weights file not found: {path}")


def read_torch_checkpoint(path) -> object:
    """Load a `torch.save` file (zip or legacy format) with every tensor as a numpy array.

    Nothing from the file is executed and torch is not needed. Returns the saved object: dicts/OrderedDicts,
    lists, tuples, numbers and strings as saved; tensors and Parameters as C-contiguous numpy arrays (float16,
    float64 and integer types kept; bfloat16 widened exactly to float32). Raises CheckpointError for a missing,
    empty, truncated or foreign file and for any pickle that asks for something other than tensor rebuilding.
    """
    found = sniff(path, expected="a PyTorch checkpoint (neither a zip archive nor a pickle stream)")
    if found.kind == "torch-zip":
        return read_torch_zip(found.path, found.size)
    if found.kind == "npz":
        raise CheckpointError(f"{found.path}: a numpy .npz archive, not a PyTorch checkpoint")
    # Any other pickle goes through the legacy reader, whose restricted header read says what it is instead
    # (a refused global, a Paddle file, no torch.save magic number).
    return read_torch_legacy(found.path, found.size)


def read_weights_file(path: str, param_key: str | None = None) -> WeightsFile:
    """Read `path` into a WeightsFile; raises CheckpointError with a one-line reason on any problem."""
    found = sniff(resolve_weights_path(os.fspath(path)))
    if found.kind == "torch-zip":
        obj, kind, layout = read_torch_zip(found.path, found.size), "torch zip checkpoint", "torch"
    elif found.kind == "npz":
        obj, kind, layout = _read_npz(found.path), "npz archive", "torch"
    elif found.kind == "torch-legacy":
        obj, kind, layout = read_torch_legacy(found.path, found.size), "torch legacy checkpoint", "torch"
    else:
        obj, kind, layout = read_paddle_pdparams(found.path), "paddle pdparams", "paddle"
    state, where = _flatten_state(obj, found.path, param_key)
    return WeightsFile(_strip_module_prefix(state), layout, f"{kind}, {where}")
