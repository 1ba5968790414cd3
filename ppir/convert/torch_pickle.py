"""What both torch.save formats share: the pickle that describes the tensors, read with a restricted unpickler.

In either format the saved object is a pickle whose tensors are calls to torch's rebuild functions on
storages named by persistent ids; only where the storage bytes lie differs (torch_zip.py, torch_legacy.py).
Globals allowed: collections.OrderedDict; torch._utils._rebuild_tensor, _rebuild_tensor_v2,
_rebuild_tensor_v3 (torch >= 2.3 uses it for uint16/uint32/uint64 with torch.UntypedStorage and a dtype
object), _rebuild_parameter, _rebuild_parameter_with_state; the typed storages torch.FloatStorage,
DoubleStorage, HalfStorage, BFloat16Storage, LongStorage, IntStorage, ShortStorage, CharStorage, ByteStorage,
BoolStorage, and torch.storage.UntypedStorage; torch.uint16/uint32/uint64 (only as v3 dtype arguments).
Each maps to a function or marker written here; `torch` is never imported.
Tensors come back as C-contiguous numpy arrays (bfloat16 widened to float32 exactly, by bit shifting).
"""
from __future__ import annotations

import collections

import numpy as np

from ..errors import CheckpointError
from .safe_pickle import SafeUnpickler, short_repr

TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of a legacy torch.save file
_MIN_COPY_BUDGET = 1 << 28       # bytes: rebuilt arrays may exceed the file size by this much (expanded views)
_COPY_BUDGET_FACTOR = 4          # ... or be this many times the file size (aliased views of one storage)


def copy_budget(file_size: int) -> int:
    """How many bytes the rebuilt arrays (and inflated zip records) of a file of this size may take."""
    return max(_COPY_BUDGET_FACTOR * file_size, _MIN_COPY_BUDGET)


class StorageType:
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


_STORAGE_TYPES = {name: StorageType(name, dt, name == "BFloat16Storage") for name, dt in (
    ("FloatStorage", "<f4"), ("DoubleStorage", "<f8"), ("HalfStorage", "<f2"), ("BFloat16Storage", "<u2"),
    ("LongStorage", "<i8"), ("IntStorage", "<i4"), ("ShortStorage", "<i2"), ("CharStorage", "i1"),
    ("ByteStorage", "u1"), ("BoolStorage", "?"), ("UntypedStorage", "u1"),
)}
_V3_DTYPES = {name: _TorchDtype(name, dt) for name, dt in (("uint16", "<u2"), ("uint32", "<u4"),
                                                           ("uint64", "<u8"))}


class _Storage:
    """A storage's elements as a 1-D little-endian (or native) numpy array, read from the file."""

    __slots__ = ("key", "stype", "array")

    def __init__(self, key: str, stype: StorageType, array):
        self.key = key
        self.stype = stype
        self.array = array  # None in the first (metadata-only) pass over a legacy file


def _bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _as_int(path: str, value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"{path}: corrupt tensor record: {what} is {short_repr(value)}, not an integer")
    if value < 0:
        raise CheckpointError(f"{path}: corrupt tensor record: {what} is negative ({value})")
    return value


class TorchUnpickler(SafeUnpickler):
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
            raise CheckpointError(f"{path}: corrupt persistent reference {short_repr(pid)}")
        typename = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if typename == "module":
            raise CheckpointError(f"{path}: refused to load: the file stores a whole pickled model "
                                  f"({short_repr(pid[1])}), not a state dict; ppir never runs code from a "
                                  f"checkpoint (save model.state_dict() instead)")
        if typename != "storage":
            raise CheckpointError(f"{path}: unsupported persistent reference of type {short_repr(typename)}")
        want = 6 if self._legacy else 5
        if len(pid) != want:
            raise CheckpointError(f"{path}: corrupt storage reference {short_repr(pid)} "
                                  f"(expected {want} items, found {len(pid)})")
        stype, key, _location, numel = pid[1:5]
        view = pid[5] if self._legacy else None
        if not isinstance(stype, StorageType):
            raise CheckpointError(f"{path}: corrupt storage reference: {short_repr(stype)} is not a storage type")
        if isinstance(key, bytes):
            key = key.decode("ascii", "replace")
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: corrupt storage reference: key {short_repr(key)} is not a string")
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
            raise CheckpointError(f"{path}: corrupt storage view {short_repr(view)}")
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
            raise CheckpointError(f"{path}: corrupt tensor record: {short_repr(storage)} is not a storage")
        offset = _as_int(path, storage_offset, "a storage offset")
        if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)) or len(size) != len(stride):
            raise CheckpointError(f"{path}: corrupt tensor record: size {short_repr(size)} and stride "
                                  f"{short_repr(stride)} do not match")
        if len(size) > 64:
            raise CheckpointError(f"{path}: corrupt tensor record: {len(size)} dimensions")
        shape = tuple(_as_int(path, s, "a tensor size") for s in size)
        strides = tuple(_as_int(path, s, "a tensor stride") for s in stride)
        stype = storage.stype
        if dtype is not None:  # _rebuild_tensor_v3: untyped (byte) storage + explicit dtype
            if not isinstance(dtype, _TorchDtype):
                raise CheckpointError(f"{path}: corrupt tensor record: {short_repr(dtype)} is not a dtype")
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
            raise CheckpointError(f"{self._path}: corrupt parameter record: {short_repr(data)} is not a tensor")
        return data

    def _rebuild_parameter_with_state(self, data, requires_grad, backward_hooks, state):
        return self._rebuild_parameter(data)


class _Pending:
    __slots__ = ()

    def __repr__(self):
        return "<tensor read later>"


_PENDING = _Pending()


def storage_array(raw: bytes, stype: StorageType, big_endian: bool) -> np.ndarray:
    dt = stype.dtype.newbyteorder(">") if big_endian and stype.dtype.itemsize > 1 else stype.dtype
    arr = np.frombuffer(raw, dtype=dt)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def declared_bytes(path: str, key: str, stype: StorageType, numel: int, available: int, where: str) -> int:
    nbytes = numel * stype.dtype.itemsize
    if nbytes > available:
        raise CheckpointError(f"{path}: storage {key!r} declares {numel} elements of {stype!r} ({nbytes} bytes) "
                              f"but {where} holds only {available} bytes (truncated or corrupt file)")
    return nbytes

