"""The torch.save zip format (the default since torch 1.6), read without torch and without running code.

Layout: `<prefix>/data.pkl` (the object; tensors as persistent ids `('storage', StorageType, key, location,
numel)`), `<prefix>/data/<key>` (raw storage bytes), optional `<prefix>/byteorder` ('little' / 'big'; absent
before torch 1.10: little). The prefix is 'archive' or the file stem. TorchScript archives (torch.jit.save)
are recognised and refused.
"""
from __future__ import annotations

import io
import zipfile

import numpy as np

from ..errors import CheckpointError
from .safe_pickle import BoundedReader, wrap_errors
from .torch_pickle import declared_bytes, storage_array, StorageType, TorchUnpickler, copy_budget

_MAX_DATA_PKL = 1 << 28          # data.pkl holds metadata only (a few MB for huge models)


def _find_zip_prefix(path: str, zf: zipfile.ZipFile) -> str:
    names = zf.namelist()
    pkls = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
    if not pkls:
        if "data.pkl" in names:
            return ""
        raise CheckpointError(f"{path}: a zip archive without data.pkl: not a torch.save checkpoint")
    if len(pkls) > 1:
        raise CheckpointError(f"{path}: a zip archive with several data.pkl records ({', '.join(pkls[:4])}); "
                              f"not a torch.save checkpoint")
    prefix = pkls[0][: -len("data.pkl")]
    if prefix + "constants.pkl" in names or any(n.startswith(prefix + "code/") for n in names):
        raise CheckpointError(f"{path}: a TorchScript archive (torch.jit.save), which ppir does not read; "
                              f"save the weights with torch.save(model.state_dict(), ...) instead")
    return prefix


def read_torch_zip(path: str, size: int):
    """The object saved in the zip-format torch.save file `path` (`size` bytes), tensors as numpy arrays."""
    return wrap_errors(path, "reading the torch zip checkpoint", _read_zip, path, size)


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

        inflate_budget = [copy_budget(size)]

        def load_storage(key: str, stype: StorageType, numel: int) -> np.ndarray:
            name = f"{prefix}data/{key}"
            try:
                info = zf.getinfo(name)
            except KeyError:
                raise CheckpointError(f"{path}: storage record {name!r} is missing from the archive") from None
            nbytes = declared_bytes(path, key, stype, numel, info.file_size, f"record {name!r}")
            if info.compress_type != zipfile.ZIP_STORED:  # torch never compresses; bound a zip bomb
                inflate_budget[0] -= nbytes
                if inflate_budget[0] < 0:
                    raise CheckpointError(f"{path}: refused to load: compressed storage records expand to far "
                                          f"more than the file size (a zip bomb?)")
            with zf.open(info) as member:
                raw = member.read(nbytes)
            if len(raw) != nbytes:
                raise CheckpointError(f"{path}: storage record {name!r} is truncated")
            return storage_array(raw, stype, big_endian)

        budget = copy_budget(size)
        reader = BoundedReader(io.BytesIO(pkl), len(pkl))
        return TorchUnpickler(reader, path, load_storage, legacy=False, budget=budget,
                               big_endian=big_endian).load()
