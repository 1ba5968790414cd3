"""Paddle's own weights files (`paddle.save`: .pdparams, .pdopt), read without running code from them.

`engine/checkpoint.py` reads training checkpoints with it and `load_weights` reads .pdparams through it.
A paddle.save file (protocol 2, 3 or 4) is a dict name -> numpy array built with
`numpy._core.multiarray._reconstruct` (`numpy.core.multiarray` when written with numpy 1.x), `numpy.ndarray`,
`numpy.dtype`; protocol 2 adds `_codecs.encode` (bytes) and `__builtin__.tuple`; a nested dict
({'model': layer.state_dict()}) is not a "state dict" to paddle.save, which then pickles each tensor as
`builtins.tuple((name, array))` inside `collections.OrderedDict`. Those are the only globals allowed, each
mapped to a checking function written here. With protocol 2/3 paddle.save splits arrays over 1 GiB into
`<name>@@.<i>` slices listed under 'UnpackBigParamInfor@@'; they are joined again here. bfloat16 parameters
are stored by paddle as uint16 arrays and are returned as such.
"""
from __future__ import annotations

import collections
import os

import numpy as np

from ..errors import CheckpointError
from .safe_pickle import BoundedReader, SafeUnpickler, short_repr, wrap_errors
from .sniff import sniff

__all__ = ["read_paddle_pdparams", "read_paddle_pickle"]

_np_reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's own _reconstruct, whatever its module
_ARRAY_KINDS = "biufc"


class _NdarrayMarker:
    """Stands for `numpy.ndarray` (only as the first argument of _reconstruct); not callable."""

    __slots__ = ()

    def __repr__(self):
        return "numpy.ndarray"


_NDARRAY = _NdarrayMarker()


def _paddle_allowed(path: str) -> dict:
    def reconstruct(subtype, shape, dtype_code):
        if subtype is not _NDARRAY:
            raise CheckpointError(f"{path}: refused to load: numpy _reconstruct of {short_repr(subtype)}")
        if not (isinstance(shape, tuple) and all(type(s) is int and s == 0 for s in shape) and shape):
            raise CheckpointError(f"{path}: corrupt array record (placeholder shape {short_repr(shape)})")
        if dtype_code not in (b"b", "b"):
            raise CheckpointError(f"{path}: corrupt array record (placeholder dtype {short_repr(dtype_code)})")
        return _np_reconstruct(np.ndarray, shape, b"b")

    def dtype(obj, align=False, copy=True):
        if not isinstance(obj, str) or len(obj) > 8:
            raise CheckpointError(f"{path}: refused to load: numpy dtype {short_repr(obj)} is not a plain "
                                  f"numeric type")
        dt = np.dtype(obj, bool(align), True)  # always a fresh copy: BUILD must never touch numpy's singletons
        if dt.kind not in _ARRAY_KINDS or dt.hasobject or dt.names is not None or dt.subdtype is not None:
            raise CheckpointError(f"{path}: refused to load: numpy dtype {obj!r} is not a plain numeric type")
        return dt

    def make_tuple(items=()):
        if not isinstance(items, (tuple, list)):
            raise CheckpointError(f"{path}: corrupt pickle: tuple() of {type(items).__name__}")
        return tuple(items)

    def codecs_encode(text, encoding="utf-8", errors="strict"):
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise CheckpointError(f"{path}: refused to load: _codecs.encode{short_repr((text, encoding))[:40]}")
        return text.encode("latin1")

    allowed = {("numpy", "ndarray"): _NDARRAY,
               ("numpy", "dtype"): dtype,
               ("builtins", "tuple"): make_tuple,
               ("__builtin__", "tuple"): make_tuple,
               ("_codecs", "encode"): codecs_encode,
               ("collections", "OrderedDict"): collections.OrderedDict}
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
    return allowed


def _paddle_build_hook(path: str):
    def build(inst, state) -> bool:
        if isinstance(inst, np.dtype):
            if not (isinstance(state, tuple) and len(state) in (8, 9)):
                raise CheckpointError(f"{path}: corrupt dtype record {short_repr(state)}")
            # numpy pickles a plain numeric dtype as (3, endian, None, None, None, -1, -1, 0)
            if (state[1] not in ("<", ">", "|", "=") or any(x is not None for x in state[2:5])
                    or state[5] != -1 or state[6] != -1):
                raise CheckpointError(f"{path}: refused to load: numpy dtype state {short_repr(state)} is not "
                                      f"a plain numeric type")
            inst.__setstate__(state)
            if inst.kind not in _ARRAY_KINDS or inst.hasobject:
                raise CheckpointError(f"{path}: refused to load: numpy dtype {inst} is not a plain numeric type")
            return True
        if type(inst) is np.ndarray:
            if not (isinstance(state, tuple) and len(state) == 5):
                raise CheckpointError(f"{path}: corrupt array record {short_repr(state)}")
            _version, shape, dt, _fortran, data = state
            if not isinstance(dt, np.dtype) or dt.kind not in _ARRAY_KINDS or dt.hasobject:
                raise CheckpointError(f"{path}: refused to load: an array of dtype {short_repr(dt)}")
            if not isinstance(data, (bytes, bytearray)):
                raise CheckpointError(f"{path}: corrupt array record (data is {type(data).__name__})")
            if not isinstance(shape, tuple) or not all(type(s) is int and s >= 0 for s in shape):
                raise CheckpointError(f"{path}: corrupt array record (shape {short_repr(shape)})")
            numel = 1
            for s in shape:
                numel *= s
            if numel * dt.itemsize != len(data):
                raise CheckpointError(f"{path}: corrupt array record: shape {list(shape)} of {dt} needs "
                                      f"{numel * dt.itemsize} bytes, the file holds {len(data)}")
            inst.__setstate__(state)
            return True
        return False

    return build


def read_paddle_pickle(path) -> object:
    """Load a pickle written by `paddle.save` (a .pdparams/.pdopt) with the restricted allow-list.

    Returns the object as saved (tensors are numpy arrays, or (name, array) tuples inside nested dicts).
    """
    found = sniff(path, expected="a Paddle .pdparams file (not a pickle stream)")
    path, size = found.path, found.size
    if found.kind == "torch-legacy":
        raise CheckpointError(f"{path}: a legacy PyTorch checkpoint, not a Paddle .pdparams")
    if found.kind != "pickle":
        raise CheckpointError(f"{path}: a zip archive (a PyTorch checkpoint or .npz?), not a Paddle .pdparams")

    def load():
        with open(path, "rb") as raw_file:
            reader = BoundedReader(raw_file, size)
            return SafeUnpickler(reader, path, _paddle_allowed(path),
                                  build_ok=(_paddle_build_hook(path),)).load()

    return wrap_errors(path, "reading the Paddle pickle", load)


def _join_big_params(path: str, state: dict) -> dict:
    """Undo paddle.save's protocol-2/3 splitting of arrays over 1 GiB ('UnpackBigParamInfor@@')."""
    info = state.pop("UnpackBigParamInfor@@", None)  # the spelling is paddle's
    if info is None:
        return state
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: corrupt 'UnpackBigParamInfor@@' entry")
    for key, entry in info.items():
        try:
            parts = [state.pop(name) for name in entry["slices"]]
            shape = tuple(int(s) for s in entry["OriginShape"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: corrupt split parameter {key!r} (missing slices)") from None
        if not parts or not all(isinstance(p, np.ndarray) and p.ndim == 1 for p in parts):
            raise CheckpointError(f"{path}: corrupt split parameter {key!r}")
        joined = np.concatenate(parts)
        numel = 1
        for s in shape:
            numel *= s
        if joined.size != numel:
            raise CheckpointError(f"{path}: split parameter {key!r}: {joined.size} elements, shape {list(shape)}")
        state[key] = joined.reshape(shape)
    return state


def _paddle_arrays(path: str, obj: dict, depth: int = 0, seen: set | None = None) -> dict:
    if depth > 32:
        raise CheckpointError(f"{path}: the .pdparams is nested too deeply")
    # A pickle can put one dict under many keys (its memo): walking such a graph as a tree takes time exponential
    # in its depth (565 bytes, 30 levels: 2^30 visits). Each dict is walked once; one reached again is refused,
    # as paddle.save never writes one dict twice. So the walk is bounded by the objects in the file.
    seen = set() if seen is None else seen
    if id(obj) in seen:
        raise CheckpointError(f"{path}: the .pdparams puts one dict under several keys (a shared or circular "
                              f"container), which paddle.save never writes; refused")
    seen.add(id(obj))
    out = {}
    for key, value in obj.items():
        if key == "StructuredToParameterName@@":
            continue
        if (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)
                and isinstance(value[1], np.ndarray)):
            value = value[1]  # paddle.save's (tensor.name, array) for tensors inside nested containers
        if isinstance(value, np.ndarray):
            if not value.dtype.isnative:
                value = value.astype(value.dtype.newbyteorder("="))
            elif not value.flags.writeable:
                value = value.copy()
            out[str(key)] = value
        elif isinstance(value, dict):
            inner = _paddle_arrays(path, value, depth + 1, seen)
            if inner:
                out[str(key)] = inner
        # anything else (epoch counters, learning-rate scheduler state, ...) is not a weight: dropped
    return out


def read_paddle_pdparams(path) -> dict:
    """Read a Paddle `.pdparams` into {name: numpy array} without running code from it.

    The bookkeeping entry 'StructuredToParameterName@@' is dropped, arrays paddle.save split into slices
    are joined again, and the (name, array) tuples paddle.save writes for tensors inside nested dicts are
    unwrapped. A nested dict (e.g. {'model': state_dict}) stays a nested dict of the same form; entries
    that are not arrays (epoch numbers, scheduler state, ...) are dropped.
    """
    obj = read_paddle_pickle(path)
    path = os.fspath(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: a Paddle pickle holding a {type(obj).__name__}, not a dict of parameters")
    state = _join_big_params(path, dict(obj))
    return _paddle_arrays(path, state)
