"""A standard-library writer of torch.save files, for tests that must not need PyTorch.

Lays files out exactly as torch.save does (zip format and the legacy format); checked against torch.load in
development. Used by the reader tests and the converter tests.
"""
import collections
import os
import io
import pickle
import struct
import zipfile

import numpy as np

# ----------------------------------------------------------------------------------------------------------------
# A minimal torch.save writer (protocol-2 pickle assembled opcode by opcode, as torch's own pickler emits it)
# ----------------------------------------------------------------------------------------------------------------

TORCH_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_NAMES = {np.dtype(k): v for k, v in {
    "float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage", "int64": "LongStorage",
    "int32": "IntStorage", "int16": "ShortStorage", "int8": "CharStorage", "uint8": "ByteStorage",
    "bool": "BoolStorage"}.items()}


class View:
    """A tensor viewing the storage made of `base` (flattened) with the given offset/size/stride (elements)."""

    def __init__(self, base, offset, size, stride):
        self.base, self.offset, self.size, self.stride = base, offset, tuple(size), tuple(stride)


class BF16:
    """A bfloat16 tensor, given as its raw uint16 bit patterns."""

    def __init__(self, bits):
        self.bits = np.ascontiguousarray(bits, dtype=np.uint16)


def _strides(shape):
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= s
    return tuple(reversed(out))


class TorchPickleWriter:
    def __init__(self, legacy=False, byteorder="little", numel_override=None):
        self.legacy = legacy
        self.byteorder = byteorder
        self.numel_override = numel_override or {}
        self.storages = {}  # key -> (storage class name, raw bytes, numel)
        self._keys = {}     # id(base array) -> key
        self._keep = []     # keep bases alive so ids stay unique

    def dumps(self, obj):
        out = io.BytesIO()
        out.write(b"\x80\x02")
        self._save(obj, out)
        out.write(b".")
        return out.getvalue()

    # opcodes ---------------------------------------------------------------------------------------------
    def _save(self, obj, out):
        if obj is None:
            out.write(b"N")
        elif obj is True:
            out.write(b"\x88")
        elif obj is False:
            out.write(b"\x89")
        elif isinstance(obj, int):
            if 0 <= obj < 256:
                out.write(b"K" + bytes([obj]))
            elif 0 <= obj < 65536:
                out.write(b"M" + struct.pack("<H", obj))
            elif -2 ** 31 <= obj < 2 ** 31:
                out.write(b"J" + struct.pack("<i", obj))
            else:
                data = pickle.encode_long(obj)
                out.write(b"\x8a" + bytes([len(data)]) + data)
        elif isinstance(obj, float):
            out.write(b"G" + struct.pack(">d", obj))
        elif isinstance(obj, str):
            data = obj.encode("utf-8")
            out.write(b"X" + struct.pack("<I", len(data)) + data)
        elif isinstance(obj, tuple):
            out.write(b"(")
            for item in obj:
                self._save(item, out)
            out.write(b"t")
        elif isinstance(obj, list):
            out.write(b"](")
            for item in obj:
                self._save(item, out)
            out.write(b"e")
        elif isinstance(obj, collections.OrderedDict):
            out.write(b"ccollections\nOrderedDict\n)R(")
            for k, v in obj.items():
                self._save(k, out)
                self._save(v, out)
            out.write(b"u")
            if getattr(obj, "_metadata", None) is not None:  # as nn.Module.state_dict() carries it
                out.write(b"}")
                self._save("_metadata", out)
                self._save(obj._metadata, out)
                out.write(b"sb")
        elif isinstance(obj, dict):
            out.write(b"}(")
            for k, v in obj.items():
                self._save(k, out)
                self._save(v, out)
            out.write(b"u")
        elif isinstance(obj, (np.ndarray, View, BF16)):
            self._save_tensor(obj, out)
        else:
            raise TypeError(type(obj))

    def _save_tensor(self, obj, out):
        if isinstance(obj, np.ndarray):
            obj = View(obj, 0, obj.shape, _strides(obj.shape))
        if isinstance(obj, BF16):
            base, storage_name = obj.bits, "BFloat16Storage"
            obj = View(base, 0, base.shape, _strides(base.shape))
        else:
            base, storage_name = obj.base, STORAGE_NAMES[obj.base.dtype]
        key = self._keys.get(id(base))
        if key is None:
            key = self._keys[id(base)] = str(len(self._keys))
            self._keep.append(base)
            dt = base.dtype.newbyteorder(">" if self.byteorder == "big" else "<")
            raw = np.ascontiguousarray(base).astype(dt).tobytes()
            self.storages[key] = (storage_name, raw, self.numel_override.get(key, base.size))
        numel = self.storages[key][2]
        out.write(b"ctorch._utils\n_rebuild_tensor_v2\n(")
        pid = ("storage", None, key, "cpu", numel) + ((None,) if self.legacy else ())
        out.write(b"(")
        for i, item in enumerate(pid):
            if i == 1:
                out.write(f"ctorch\n{storage_name}\n".encode())
            else:
                self._save(item, out)
        out.write(b"tQ")  # TUPLE, BINPERSID
        self._save(obj.offset, out)
        self._save(obj.size, out)
        self._save(obj.stride, out)
        out.write(b"\x89ccollections\nOrderedDict\n)Rt")  # requires_grad=False, backward_hooks=OrderedDict()
        out.write(b"R")


def write_torch_zip(path, obj, prefix="archive", byteorder="little", numel_override=None, storage_hook=None):
    """Write `obj` like torch.save (torch >= 1.6 zip format). storage_hook(key, raw) -> raw can damage data."""
    w = TorchPickleWriter(byteorder=byteorder, numel_override=numel_override)
    pkl = w.dumps(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        z.writestr(f"{prefix}/.format_version", "1")
        z.writestr(f"{prefix}/.storage_alignment", "64")
        z.writestr(f"{prefix}/byteorder", byteorder)
        for key, (_name, raw, _numel) in w.storages.items():
            z.writestr(f"{prefix}/data/{key}", storage_hook(key, raw) if storage_hook else raw)
        z.writestr(f"{prefix}/version", "3\n")
        z.writestr(f"{prefix}/.data/serialization_id", "0" * 40)
    return path


def write_torch_legacy(path, obj, main_pickle=None, numel_override=None, storage_hook=None):
    """Write `obj` like torch.save(..., _use_new_zipfile_serialization=False)."""
    w = TorchPickleWriter(legacy=True, numel_override=numel_override)
    main = main_pickle if main_pickle is not None else w.dumps(obj)
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    with open(path, "wb") as f:
        f.write(pickle.dumps(TORCH_MAGIC, protocol=2))
        f.write(pickle.dumps(1001, protocol=2))
        f.write(pickle.dumps(sys_info, protocol=2))
        f.write(main)
        keys = sorted(w.storages)
        f.write(pickle.dumps(keys, protocol=2))
        for key in keys:
            _name, raw, numel = w.storages[key]
            f.write(struct.pack("<q", numel))
            f.write(storage_hook(key, raw) if storage_hook else raw)
    return path


def official_checkpoint(arch, state, dst):
    """Wrap and write a state dict the way each official repo released its weights: HINet a zip `{'params'}`
    (.pth), MIMO-UNet(+) a zip `{'model'}` (.pkl), MIRNet a legacy file `{'epoch', 'state_dict'}` saved from
    DataParallel (`module.` prefixes)."""
    if arch == "HINet":
        return write_torch_zip(dst, {"params": state})
    if arch.startswith("MIMOUNet"):
        return write_torch_zip(dst, {"model": state}, prefix=os.path.basename(dst)[:-4])
    prefixed = collections.OrderedDict((f"module.{k}", v) for k, v in state.items())
    return write_torch_legacy(dst, {"epoch": 60, "state_dict": prefixed})
