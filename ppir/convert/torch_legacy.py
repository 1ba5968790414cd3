"""The legacy torch.save format (`_use_new_zipfile_serialization=False`, torch < 1.6), read without torch.

Layout, one stream: the pickled magic number, protocol version 1001, sys_info, the object pickle (persistent
ids with a sixth `view_metadata` item), the pickled list of storage keys, then per key an 8-byte
little-endian element count and the raw bytes (always little-endian). Every pickle in it goes through the
restricted unpickler, the header ones with no global allowed at all.
"""
from __future__ import annotations

from ..errors import CheckpointError
from .safe_pickle import BoundedReader, SafeUnpickler, short_repr, wrap_errors
from .torch_pickle import (TORCH_MAGIC, declared_bytes, storage_array, StorageType, TorchUnpickler,
                           copy_budget)

_TORCH_PROTOCOL_VERSION = 1001


def read_torch_legacy(path: str, size: int):
    """The object saved in the legacy torch.save file `path` (`size` bytes), tensors as numpy arrays."""
    return wrap_errors(path, "reading the legacy torch.save file", _read_legacy, path, size)


def _read_legacy(path: str, size: int):
    with open(path, "rb") as raw_file:
        f = BoundedReader(raw_file, size)
        plain = dict(path=path, allowed={})
        try:
            magic = SafeUnpickler(f, **plain).load()
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
        if type(magic) is not int or magic != TORCH_MAGIC:
            raise CheckpointError(f"{path}: a pickle file, but not a PyTorch checkpoint (no torch.save magic "
                                  f"number; found {type(magic).__name__} {short_repr(magic, 40)})")

        def header():
            version = SafeUnpickler(f, **plain).load()
            if version != _TORCH_PROTOCOL_VERSION:
                raise CheckpointError(f"{path}: unsupported torch.save protocol version {short_repr(version)}")
            sys_info = SafeUnpickler(f, **plain).load()
            if not isinstance(sys_info, dict):
                raise CheckpointError(f"{path}: corrupt torch.save header (sys_info is "
                                      f"{type(sys_info).__name__})")
            return f.tell()

        main_start = wrap_errors(path, "reading the legacy torch.save header", header)
        budget = copy_budget(size)

        # Pass 1: the object pickle, recording each storage's type and size (its bytes come after the pickle).
        declared: dict[str, tuple[StorageType, int]] = {}

        def record(key, stype, numel):
            declared.setdefault(key, (stype, numel))
            return None

        def index_storages():
            TorchUnpickler(f, path, record, legacy=True, budget=budget).load()
            keys = SafeUnpickler(f, **plain).load()
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
                nbytes = declared_bytes(path, key, stype, numel, max(size - pos - 8, 0), "the rest of the file")
                offsets[key] = (pos + 8, nbytes)
                pos += 8 + nbytes
            missing = [k for k in declared if k not in offsets]
            if missing:
                raise CheckpointError(f"{path}: storage {missing[0]!r} has no data in the file")
            return offsets

        offsets = wrap_errors(path, "reading the legacy torch.save file", index_storages)

        # Pass 2: the same pickle again, now with the storage bytes at hand.
        def load_storage(key, stype, numel):
            start, nbytes = offsets[key]
            here = f.tell()
            f.seek(start)
            raw = f.read(nbytes)
            f.seek(here)
            return storage_array(raw, stype, big_endian=False)  # legacy storages are always little-endian

        def load():
            f.seek(main_start)
            return TorchUnpickler(f, path, load_storage, legacy=True, budget=budget).load()

        return wrap_errors(path, "reading the legacy torch.save file", load)
