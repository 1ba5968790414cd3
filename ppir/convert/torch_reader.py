"""Read PyTorch (`torch.save`) checkpoints and Paddle `.pdparams` without PyTorch and without running code.

Both formats are pickles, and a pickle can call any importable function while it loads. The readers here use
a restricted unpickler: every global the pickle asks for is looked up in a short allow-list and mapped to a
function written in this module (or to a numpy function that only builds arrays); anything else is refused
with a CheckpointError before it is imported. `torch` is never imported.

PyTorch files:
  * zip format (torch >= 1.6 default): `<prefix>/data.pkl` (the object, tensors as persistent ids
    `('storage', StorageType, key, location, numel)`), `<prefix>/data/<key>` (raw storage bytes),
    optional `<prefix>/byteorder` ('little' / 'big'). The prefix is 'archive' or the file stem.
  * legacy format (`_use_new_zipfile_serialization=False`, torch < 1.6): pickled magic number, protocol
    version 1001, sys_info, the object pickle (persistent ids with a sixth `view_metadata` item), the
    pickled list of storage keys, then per key an 8-byte little-endian element count and the raw bytes
    (always little-endian).
  * the early tar-based format and TorchScript archives are recognised and refused with a clear message.
  Globals allowed: collections.OrderedDict; torch._utils._rebuild_tensor, _rebuild_tensor_v2,
  _rebuild_tensor_v3 (torch >= 2.3 uses it for uint16/uint32/uint64 with torch.UntypedStorage and a dtype
  object), _rebuild_parameter, _rebuild_parameter_with_state; the typed storages torch.FloatStorage,
  DoubleStorage, HalfStorage, BFloat16Storage, LongStorage, IntStorage, ShortStorage, CharStorage,
  ByteStorage, BoolStorage, and torch.storage.UntypedStorage; torch.uint16/uint32/uint64 (only as v3 dtype
  arguments).
  Tensors come back as C-contiguous numpy arrays (bfloat16 widened to float32 exactly, by bit shifting).

Paddle files (`paddle.save`, protocol 2, 3 or 4): a dict name -> numpy array built with
`numpy._core.multiarray._reconstruct` (`numpy.core.multiarray` when written with numpy 1.x), `numpy.ndarray`,
`numpy.dtype`; protocol 2 adds `_codecs.encode` (bytes) and `__builtin__.tuple`; a nested dict
({'model': layer.state_dict()}) is not a "state dict" to paddle.save, which then pickles each tensor as
`builtins.tuple((name, array))` inside `collections.OrderedDict`. Those are the only globals allowed.
With protocol 2/3 paddle.save splits arrays over 1 GiB into `<name>@@.<i>` slices listed under
'UnpackBigParamInfor@@'; they are joined again here. bfloat16 parameters are stored by paddle as uint16 arrays
and are returned as such.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from ..errors import CheckpointError

__all__ = ["read_torch_checkpoint", "read_paddle_pdparams", "read_paddle_pickle"]

_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_PROTOCOL_VERSION = 1001
_MAX_DATA_PKL = 1 << 28          # data.pkl holds metadata only (a few MB for huge models)
_MIN_COPY_BUDGET = 1 << 28       # bytes: rebuilt arrays may exceed the file size by this much (expanded views)
_COPY_BUDGET_FACTOR = 4          # ... or be this many times the file size (aliased views of one storage)


# --------------------------------------------------------------------------------------------------------------
# Plumbing shared by both readers
# --------------------------------------------------------------------------------------------------------------

class _Truncated(Exception):
    """Raised by _BoundedReader when the stream ends before the bytes a pickle opcode asks for."""


class _BoundedReader:
    """A read-only view of a seekable binary file of known size whose reads never over-allocate.

    `read(n)` with n past the end raises _Truncated instead of allocating n bytes or returning short data,
    so a hostile length field in the pickle cannot make us allocate memory the file does not back.
    """

    def __init__(self, f, size: int):
        self._f = f
        self._size = size

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._f.seek(pos, whence)

    def remaining(self) -> int:
        return self._size - self._f.tell()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = max(self.remaining(), 0)
        if n > self.remaining():
            raise _Truncated(f"wanted {n} bytes at offset {self.tell()}, only {max(self.remaining(), 0)} left")
        data = self._f.read(n)
        if len(data) != n:
            raise _Truncated(f"wanted {n} bytes at offset {self.tell()}, got {len(data)}")
        return data

    def readline(self) -> bytes:
        return self._f.readline(max(self.remaining(), 0))

    def readinto(self, b) -> int:  # protocol 5 BYTEARRAY8; the length has been checked by the caller
        data = self.read(len(b))
        b[:] = data
        return len(data)


def _printable(text: str, limit: int = 100) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refuse_global(path: str, module: str, name: str) -> CheckpointError:
    err = CheckpointError(f"{path}: refused to load: the pickle asks for '{_printable(module)}.{_printable(name)}', "
                          f"which is not a tensor-rebuild function; ppir never runs code from a checkpoint")
    err.refused_global = (module, name)
    return err


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class _SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler, so BUILD can be restricted too
    """Unpickler whose globals come only from `allowed`; BUILD is limited to the objects named below.

    Uses `pickle._Unpickler` (CPython's reference implementation, the same opcode semantics as the C one)
    because its dispatch table can be overridden: BUILD (which calls `__setstate__` / sets attributes) is
    only honoured on OrderedDict (the `_metadata` attribute torch state dicts carry), and on numpy arrays and
    dtypes made by the paddle allow-list.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, path: str, allowed: dict, persistent=None, build_ok=()):
        super().__init__(file, encoding="latin1")
        self._path = path
        self._allowed = allowed
        self._persistent = persistent
        self._build_ok = build_ok  # callables (inst, state) -> handled?; OrderedDict handled always

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise _refuse_global(self._path, str(module), str(name)) from None

    def persistent_load(self, pid):
        if self._persistent is None:
            raise CheckpointError(f"{self._path}: unexpected persistent reference {_short_repr(pid)} "
                                  f"in the pickle; not a file ppir can read")
        return self._persistent(pid)

    def _load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is collections.OrderedDict:
            slotstate = None
            if isinstance(state, tuple) and len(state) == 2:
                state, slotstate = state
            if (state is None or isinstance(state, dict)) and slotstate is None:
                for k, v in (state or {}).items():
                    if not isinstance(k, str):
                        break
                    inst.__dict__[k] = v  # e.g. torch's state_dict._metadata; never a setattr
                else:
                    return
        for hook in self._build_ok:
            if hook(inst, state):
                return
        raise CheckpointError(f"{self._path}: refused to load: the pickle sets the state of a "
                              f"{type(inst).__name__} object, which a weights file never does")

    dispatch[pickle.BUILD[0]] = _load_build

    def _load_bytearray8(self):
        (n,) = struct.unpack("<Q", self.read(8))
        raise CheckpointError(f"{self._path}: unexpected pickle protocol 5 byte array ({n} bytes); "
                              f"not a file ppir can read")

    if hasattr(pickle, "BYTEARRAY8"):
        dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8


def _short_repr(obj, limit: int = 80) -> str:
    try:
        text = repr(obj)
    except Exception:  # pragma: no cover - repr of allowed objects does not fail
        text = f"<{type(obj).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_file(path) -> tuple[str, int]:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a weights file")
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {_one_line(e)}") from None
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes)")
    return path, size


def _read_head(path, n: int) -> tuple[str, int, bytes]:
    """`_check_file`, then the file's first `n` bytes (to tell the format): (path, size, head)."""
    path, size = _check_file(path)
    try:
        with open(path, "rb") as fh:
            return path, size, fh.read(n)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {_one_line(e)}") from None


def _wrap_errors(path: str, what: str, fn, *args):
    """Run fn(*args); turn any failure other than CheckpointError into a one-line CheckpointError."""
    try:
        return fn(*args)
    except CheckpointError:
        raise
    except _Truncated as e:
        raise CheckpointError(f"{path}: {what}: the file ends early (truncated? {e})") from None
    except EOFError:
        raise CheckpointError(f"{path}: {what}: the file ends early (truncated?)") from None
    except MemoryError:
        raise CheckpointError(f"{path}: {what}: out of memory") from None
    except RecursionError:
        raise CheckpointError(f"{path}: {what}: the pickle is nested too deeply") from None
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{path}: {what}: damaged zip archive ({_one_line(e)})") from None
    except Exception as e:  # pickle.UnpicklingError, struct.error, ValueError, zlib.error, OSError, ...
        raise CheckpointError(f"{path}: {what}: corrupt or unsupported content ({_one_line(e)})") from None


# --------------------------------------------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------------------------------------------

class _StorageType:
    """Stands for a `torch.<X>Storage` class in the pickle; only ever used as a marker, never called."""

    __slots__ = ("name", "dtype", "bf16")

    def __init__(self, name: str, dtype: str, bf16: bool = False):
        self.name = name
        self.dtype = np.dtype(dtype)  # little-endian storage element type (bfloat16: its raw uint16 bits)
        self.bf16 = bf16

    def __repr__(self):
        return f"torch.{self.name}"


class _TorchDtype:
    """Stands for a `torch.<dtype>` object (only as the dtype argument of _rebuild_tensor_v3)."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: str):
        self.name = name
        self.dtype = np.dtype(dtype)

    def __repr__(self):
        return f"torch.{self.name}"


_STORAGE_TYPES = {name: _StorageType(name, dt, name == "BFloat16Storage") for name, dt in (
    ("FloatStorage", "<f4"), ("DoubleStorage", "<f8"), ("HalfStorage", "<f2"), ("BFloat16Storage", "<u2"),
    ("LongStorage", "<i8"), ("IntStorage", "<i4"), ("ShortStorage", "<i2"), ("CharStorage", "i1"),
    ("ByteStorage", "u1"), ("BoolStorage", "?"), ("UntypedStorage", "u1"),
)}
_V3_DTYPES = {name: _TorchDtype(name, dt) for name, dt in (("uint16", "<u2"), ("uint32", "<u4"),
                                                           ("uint64", "<u8"))}


class _Storage:
    """A storage's elements as a 1-D little-endian (or native) numpy array, read from the file."""

    __slots__ = ("key", "stype", "array")

    def __init__(self, key: str, stype: _StorageType, array):
        self.key = key
        self.stype = stype
        self.array = array  # None in the first (metadata-only) pass over a legacy file


def _bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _as_int(path: str, value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"{path}: corrupt tensor record: {what} is {_short_repr(value)}, not an integer")
    if value < 0:
        raise CheckpointError(f"{path}: corrupt tensor record: {what} is negative ({value})")
    return value


class _TorchUnpickler(_SafeUnpickler):
    """Restricted unpickler for torch.save pickles. `load_storage(key, stype, numel)` returns the data."""

    def __init__(self, file, path: str, load_storage, legacy: bool, budget: int, big_endian: bool = False):
        allowed = {("collections", "OrderedDict"): collections.OrderedDict,
                   ("torch._utils", "_rebuild_tensor"): self._rebuild_tensor,
                   ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor_v2,
                   ("torch._utils", "_rebuild_tensor_v3"): self._rebuild_tensor_v3,
                   ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
                   ("torch._utils", "_rebuild_parameter_with_state"): self._rebuild_parameter_with_state}
        allowed.update({("torch", name): st for name, st in _STORAGE_TYPES.items()})
        allowed[("torch.storage", "UntypedStorage")] = _STORAGE_TYPES["UntypedStorage"]
        allowed.update({("torch", name): dt for name, dt in _V3_DTYPES.items()})
        super().__init__(file, path, allowed, persistent=self._persistent_storage)
        self._load_storage = load_storage
        self._legacy = legacy
        self._storages: dict[str, _Storage] = {}
        self._views: dict[str, _Storage] = {}
        self._budget = budget
        self._big_endian = big_endian

    # persistent ids ------------------------------------------------------------------------------------------
    def _persistent_storage(self, pid):
        path = self._path
        if not isinstance(pid, tuple) or not pid:
            raise CheckpointError(f"{path}: corrupt persistent reference {_short_repr(pid)}")
        typename = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if typename == "module":
            raise CheckpointError(f"{path}: refused to load: the file stores a whole pickled model "
                                  f"({_short_repr(pid[1])}), not a state dict; ppir never runs code from a "
                                  f"checkpoint (save model.state_dict() instead)")
        if typename != "storage":
            raise CheckpointError(f"{path}: unsupported persistent reference of type {_short_repr(typename)}")
        want = 6 if self._legacy else 5
        if len(pid) != want:
            raise CheckpointError(f"{path}: corrupt storage reference {_short_repr(pid)} "
                                  f"(expected {want} items, found {len(pid)})")
        stype, key, _location, numel = pid[1:5]
        view = pid[5] if self._legacy else None
        if not isinstance(stype, _StorageType):
            raise CheckpointError(f"{path}: corrupt storage reference: {_short_repr(stype)} is not a storage type")
        if isinstance(key, bytes):
            key = key.decode("ascii", "replace")
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: corrupt storage reference: key {_short_repr(key)} is not a string")
        numel = _as_int(path, numel, f"the element count of storage {key!r}")
        storage = self._storages.get(key)
        if storage is None:
            storage = _Storage(key, stype, self._load_storage(key, stype, numel))
            self._storages[key] = storage
        elif storage.stype is not stype:
            raise CheckpointError(f"{path}: storage {key!r} is used both as {storage.stype!r} and as {stype!r}")
        if view is None:
            return storage
        # Pre-0.4 storage views: (view_key, offset, size) in elements of the root storage.
        if not (isinstance(view, tuple) and len(view) == 3):
            raise CheckpointError(f"{path}: corrupt storage view {_short_repr(view)}")
        view_key, offset, size = view
        offset = _as_int(path, offset, "a storage view offset")
        size = _as_int(path, size, "a storage view size")
        if offset + size > numel:
            raise CheckpointError(f"{path}: storage view {view_key!r} [{offset}:{offset + size}] lies outside "
                                  f"storage {key!r} of {numel} elements")
        if view_key not in self._views:
            arr = None if storage.array is None else storage.array[offset:offset + size]
            self._views[view_key] = _Storage(str(view_key), stype, arr)
        return self._views[view_key]

    # tensor rebuilding ---------------------------------------------------------------------------------------
    def _rebuild(self, storage, storage_offset, size, stride, dtype=None):
        path = self._path
        if not isinstance(storage, _Storage):
            raise CheckpointError(f"{path}: corrupt tensor record: {_short_repr(storage)} is not a storage")
        offset = _as_int(path, storage_offset, "a storage offset")
        if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)) or len(size) != len(stride):
            raise CheckpointError(f"{path}: corrupt tensor record: size {_short_repr(size)} and stride "
                                  f"{_short_repr(stride)} do not match")
        if len(size) > 64:
            raise CheckpointError(f"{path}: corrupt tensor record: {len(size)} dimensions")
        shape = tuple(_as_int(path, s, "a tensor size") for s in size)
        strides = tuple(_as_int(path, s, "a tensor stride") for s in stride)
        stype = storage.stype
        if dtype is not None:  # _rebuild_tensor_v3: untyped (byte) storage + explicit dtype
            if not isinstance(dtype, _TorchDtype):
                raise CheckpointError(f"{path}: corrupt tensor record: {_short_repr(dtype)} is not a dtype")
            if stype.dtype.itemsize != 1:
                raise CheckpointError(f"{path}: corrupt tensor record: {dtype!r} tensor on a {stype!r}")
            elem, bf16 = dtype.dtype, False
            if self._big_endian:
                elem = elem.newbyteorder(">")
        else:
            elem, bf16 = stype.dtype, stype.bf16
        if storage.array is None:  # metadata pass over a legacy file: nothing to read yet
            return _PENDING
        base = storage.array
        if dtype is not None:
            usable = base.size - base.size % elem.itemsize
            base = base[:usable].view(elem)
        numel = 1
        for s in shape:
            numel *= s
        if numel == 0:
            out = np.empty(shape, dtype=base.dtype)
        else:
            last = offset + sum((s - 1) * st for s, st in zip(shape, strides))
            if last >= base.size:
                raise CheckpointError(
                    f"{path}: corrupt tensor record: a tensor of size {list(shape)}, stride {list(strides)}, "
                    f"offset {offset} reaches element {last} of storage {storage.key!r}, which has only "
                    f"{base.size} elements")
            nbytes = numel * base.dtype.itemsize
            self._budget -= nbytes
            if self._budget < 0:
                raise CheckpointError(f"{path}: refused to load: its tensors would take far more memory than "
                                      f"the file holds (overlapping views of a storage)")
            view = np.lib.stride_tricks.as_strided(base[offset:], shape=shape,
                                                   strides=tuple(st * base.dtype.itemsize for st in strides),
                                                   writeable=False)
            out = np.array(view, copy=True, order="C")
        if bf16:
            out = _bf16_to_f32(out)
        if not out.dtype.isnative:
            out = out.astype(out.dtype.newbyteorder("="))
        return out

    def _rebuild_tensor(self, storage, storage_offset, size, stride):
        return self._rebuild(storage, storage_offset, size, stride)

    def _rebuild_tensor_v2(self, storage, storage_offset, size, stride, requires_grad=False,
                           backward_hooks=None, metadata=None):
        return self._rebuild(storage, storage_offset, size, stride)

    def _rebuild_tensor_v3(self, storage, storage_offset, size, stride, requires_grad, backward_hooks,
                           dtype, metadata=None):
        return self._rebuild(storage, storage_offset, size, stride, dtype=dtype)

    def _rebuild_parameter(self, data, requires_grad=False, backward_hooks=None):
        if data is not _PENDING and not isinstance(data, np.ndarray):
            raise CheckpointError(f"{self._path}: corrupt parameter record: {_short_repr(data)} is not a tensor")
        return data

    def _rebuild_parameter_with_state(self, data, requires_grad, backward_hooks, state):
        return self._rebuild_parameter(data)


class _Pending:
    __slots__ = ()

    def __repr__(self):
        return "<tensor read later>"


_PENDING = _Pending()


def _storage_array(raw: bytes, stype: _StorageType, big_endian: bool) -> np.ndarray:
    dt = stype.dtype.newbyteorder(">") if big_endian and stype.dtype.itemsize > 1 else stype.dtype
    arr = np.frombuffer(raw, dtype=dt)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _declared_bytes(path: str, key: str, stype: _StorageType, numel: int, available: int, where: str) -> int:
    nbytes = numel * stype.dtype.itemsize
    if nbytes > available:
        raise CheckpointError(f"{path}: storage {key!r} declares {numel} elements of {stype!r} ({nbytes} bytes) "
                              f"but {where} holds only {available} bytes (truncated or corrupt file)")
    return nbytes


# zip format ---------------------------------------------------------------------------------------------------

def _find_zip_prefix(path: str, zf: zipfile.ZipFile) -> str:
    names = zf.namelist()
    pkls = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
    if not pkls:
        if "data.pkl" in names:
            return ""
        if any(n.endswith(".npy") for n in names):
            raise CheckpointError(f"{path}: this is a numpy .npz archive, not a PyTorch checkpoint")
        raise CheckpointError(f"{path}: a zip archive without data.pkl: not a torch.save checkpoint")
    if len(pkls) > 1:
        raise CheckpointError(f"{path}: a zip archive with several data.pkl records ({', '.join(pkls[:4])}); "
                              f"not a torch.save checkpoint")
    prefix = pkls[0][: -len("data.pkl")]
    if prefix + "constants.pkl" in names or any(n.startswith(prefix + "code/") for n in names):
        raise CheckpointError(f"{path}: a TorchScript archive (torch.jit.save), which ppir does not read; "
                              f"save the weights with torch.save(model.state_dict(), ...) instead")
    return prefix


def _read_zip(path: str, size: int):
    with zipfile.ZipFile(path) as zf:
        prefix = _find_zip_prefix(path, zf)
        big_endian = False
        try:
            order_info = zf.getinfo(prefix + "byteorder")
        except KeyError:
            order_info = None  # written by torch < 1.10: little-endian
        if order_info is not None:
            order = zf.read(order_info)[:16]
            if order not in (b"little", b"big"):
                raise CheckpointError(f"{path}: unknown byte order {order!r} in {prefix}byteorder")
            big_endian = order == b"big"
        pkl_info = zf.getinfo(prefix + "data.pkl")
        if pkl_info.file_size > _MAX_DATA_PKL:
            raise CheckpointError(f"{path}: {prefix}data.pkl is implausibly large ({pkl_info.file_size} bytes)")
        pkl = zf.read(pkl_info)

        inflate_budget = [max(_COPY_BUDGET_FACTOR * size, _MIN_COPY_BUDGET)]

        def load_storage(key: str, stype: _StorageType, numel: int) -> np.ndarray:
            name = f"{prefix}data/{key}"
            try:
                info = zf.getinfo(name)
            except KeyError:
                raise CheckpointError(f"{path}: storage record {name!r} is missing from the archive") from None
            nbytes = _declared_bytes(path, key, stype, numel, info.file_size, f"record {name!r}")
            if info.compress_type != zipfile.ZIP_STORED:  # torch never compresses; bound a zip bomb
                inflate_budget[0] -= nbytes
                if inflate_budget[0] < 0:
                    raise CheckpointError(f"{path}: refused to load: compressed storage records expand to far "
                                          f"more than the file size (a zip bomb?)")
            with zf.open(info) as member:
                raw = member.read(nbytes)
            if len(raw) != nbytes:
                raise CheckpointError(f"{path}: storage record {name!r} is truncated")
            return _storage_array(raw, stype, big_endian)

        budget = max(_COPY_BUDGET_FACTOR * size, _MIN_COPY_BUDGET)
        reader = _BoundedReader(io.BytesIO(pkl), len(pkl))
        return _TorchUnpickler(reader, path, load_storage, legacy=False, budget=budget,
                               big_endian=big_endian).load()


# legacy format ------------------------------------------------------------------------------------------------

def _read_legacy(path: str, size: int):
    with open(path, "rb") as raw_file:
        f = _BoundedReader(raw_file, size)
        plain = dict(path=path, allowed={})
        try:
            magic = _SafeUnpickler(f, **plain).load()
        except CheckpointError as e:
            refused = getattr(e, "refused_global", None)
            if refused and refused[0].split(".")[0] == "numpy":
                raise CheckpointError(f"{path}: a pickle of numpy arrays (a Paddle .pdparams?), not a PyTorch "
                                      f"checkpoint") from None
            if refused:
                raise
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (not a zip archive, and not a legacy "
                                  f"torch.save stream)") from None
        except Exception:
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (not a zip archive, and not a legacy "
                                  f"torch.save stream)") from None
        if type(magic) is not int or magic != _TORCH_MAGIC:
            raise CheckpointError(f"{path}: a pickle file, but not a PyTorch checkpoint (no torch.save magic "
                                  f"number; found {type(magic).__name__} {_short_repr(magic, 40)})")

        def header():
            version = _SafeUnpickler(f, **plain).load()
            if version != _TORCH_PROTOCOL_VERSION:
                raise CheckpointError(f"{path}: unsupported torch.save protocol version {_short_repr(version)}")
            sys_info = _SafeUnpickler(f, **plain).load()
            if not isinstance(sys_info, dict):
                raise CheckpointError(f"{path}: corrupt torch.save header (sys_info is "
                                      f"{type(sys_info).__name__})")
            return f.tell()

        main_start = _wrap_errors(path, "reading the legacy torch.save header", header)
        budget = max(_COPY_BUDGET_FACTOR * size, _MIN_COPY_BUDGET)

        # Pass 1: the object pickle, recording each storage's type and size (its bytes come after the pickle).
        declared: dict[str, tuple[_StorageType, int]] = {}

        def record(key, stype, numel):
            declared.setdefault(key, (stype, numel))
            return None

        def index_storages():
            _TorchUnpickler(f, path, record, legacy=True, budget=budget).load()
            keys = _SafeUnpickler(f, **plain).load()
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise CheckpointError(f"{path}: corrupt storage key list")
            offsets = {}
            pos = f.tell()
            for key in keys:
                if key not in declared:
                    raise CheckpointError(f"{path}: storage {key!r} is listed but never used")
                stype, numel = declared[key]
                f.seek(pos)
                count = int.from_bytes(f.read(8), "little")
                if count != numel:
                    raise CheckpointError(f"{path}: storage {key!r} holds {count} elements, the pickle "
                                          f"declares {numel} (corrupt file)")
                nbytes = _declared_bytes(path, key, stype, numel, max(size - pos - 8, 0), "the rest of the file")
                offsets[key] = (pos + 8, nbytes)
                pos += 8 + nbytes
            missing = [k for k in declared if k not in offsets]
            if missing:
                raise CheckpointError(f"{path}: storage {missing[0]!r} has no data in the file")
            return offsets

        offsets = _wrap_errors(path, "reading the legacy torch.save file", index_storages)

        # Pass 2: the same pickle again, now with the storage bytes at hand.
        def load_storage(key, stype, numel):
            start, nbytes = offsets[key]
            here = f.tell()
            f.seek(start)
            raw = f.read(nbytes)
            f.seek(here)
            return _storage_array(raw, stype, big_endian=False)  # legacy storages are always little-endian

        def load():
            f.seek(main_start)
            return _TorchUnpickler(f, path, load_storage, legacy=True, budget=budget).load()

        return _wrap_errors(path, "reading the legacy torch.save file", load)


def read_torch_checkpoint(path) -> object:
    """Load a `torch.save` file (zip or legacy format) with every tensor as a numpy array.

    Nothing from the file is executed and torch is not needed. Returns the saved object: dicts/OrderedDicts,
    lists, tuples, numbers and strings as saved; tensors and Parameters as C-contiguous numpy arrays (float16,
    float64 and integer types kept; bfloat16 widened exactly to float32). Raises CheckpointError for a missing,
    empty, truncated or foreign file and for any pickle that asks for something other than tensor rebuilding.
    """
    path, size, head = _read_head(path, 512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _wrap_errors(path, "reading the torch zip checkpoint", _read_zip, path, size)
    if len(head) >= 262 and head[257:262] == b"ustar":
        raise CheckpointError(f"{path}: a checkpoint in the early tar-based torch.save format, which ppir does "
                              f"not read; load it with torch and save it again with a current torch.save")
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        raise CheckpointError(f"{path}: looks like a safetensors file, which this reader does not handle")
    if head[:1] != b"\x80":
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle stream)")
    return _wrap_errors(path, "reading the legacy torch.save file", _read_legacy, path, size)


# --------------------------------------------------------------------------------------------------------------
# Paddle
# --------------------------------------------------------------------------------------------------------------

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
            raise CheckpointError(f"{path}: refused to load: numpy _reconstruct of {_short_repr(subtype)}")
        if not (isinstance(shape, tuple) and all(type(s) is int and s == 0 for s in shape) and shape):
            raise CheckpointError(f"{path}: corrupt array record (placeholder shape {_short_repr(shape)})")
        if dtype_code not in (b"b", "b"):
            raise CheckpointError(f"{path}: corrupt array record (placeholder dtype {_short_repr(dtype_code)})")
        return _np_reconstruct(np.ndarray, shape, b"b")

    def dtype(obj, align=False, copy=True):
        if not isinstance(obj, str) or len(obj) > 8:
            raise CheckpointError(f"{path}: refused to load: numpy dtype {_short_repr(obj)} is not a plain "
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
            raise CheckpointError(f"{path}: refused to load: _codecs.encode{_short_repr((text, encoding))[:40]}")
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
                raise CheckpointError(f"{path}: corrupt dtype record {_short_repr(state)}")
            # numpy pickles a plain numeric dtype as (3, endian, None, None, None, -1, -1, 0)
            if (state[1] not in ("<", ">", "|", "=") or any(x is not None for x in state[2:5])
                    or state[5] != -1 or state[6] != -1):
                raise CheckpointError(f"{path}: refused to load: numpy dtype state {_short_repr(state)} is not "
                                      f"a plain numeric type")
            inst.__setstate__(state)
            if inst.kind not in _ARRAY_KINDS or inst.hasobject:
                raise CheckpointError(f"{path}: refused to load: numpy dtype {inst} is not a plain numeric type")
            return True
        if type(inst) is np.ndarray:
            if not (isinstance(state, tuple) and len(state) == 5):
                raise CheckpointError(f"{path}: corrupt array record {_short_repr(state)}")
            _version, shape, dt, _fortran, data = state
            if not isinstance(dt, np.dtype) or dt.kind not in _ARRAY_KINDS or dt.hasobject:
                raise CheckpointError(f"{path}: refused to load: an array of dtype {_short_repr(dt)}")
            if not isinstance(data, (bytes, bytearray)):
                raise CheckpointError(f"{path}: corrupt array record (data is {type(data).__name__})")
            if not isinstance(shape, tuple) or not all(type(s) is int and s >= 0 for s in shape):
                raise CheckpointError(f"{path}: corrupt array record (shape {_short_repr(shape)})")
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
    path, size, head = _read_head(path, 4)
    if head.startswith(b"PK"):
        raise CheckpointError(f"{path}: a zip archive (a PyTorch checkpoint or .npz?), not a Paddle .pdparams")
    if head[:1] != b"\x80":
        raise CheckpointError(f"{path}: not a Paddle .pdparams file (not a pickle stream)")

    def load():
        with open(path, "rb") as raw_file:
            reader = _BoundedReader(raw_file, size)
            return _SafeUnpickler(reader, path, _paddle_allowed(path),
                                  build_ok=(_paddle_build_hook(path),)).load()

    obj = _wrap_errors(path, "reading the Paddle pickle", load)
    if type(obj) is int and obj == _TORCH_MAGIC:
        raise CheckpointError(f"{path}: a legacy PyTorch checkpoint, not a Paddle .pdparams")
    return obj


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


def _paddle_arrays(path: str, obj: dict, depth: int = 0) -> dict:
    if depth > 32:
        raise CheckpointError(f"{path}: the .pdparams is nested too deeply")
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
            inner = _paddle_arrays(path, value, depth + 1)
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
