"""The restricted unpickler every weights reader builds on, and the helpers that keep its errors one line.

A pickle can call any importable function while it loads. `SafeUnpickler` looks every global the pickle asks
for up in the caller's allow-list (functions written by the readers, or numpy functions that only build
arrays) and refuses anything else with a CheckpointError before it is imported; BUILD (`__setstate__`) is
refused unless a reader's hook accepts the object. `BoundedReader` makes a hostile length field fail instead
of allocating memory the file does not back, and `wrap_errors` turns whatever a damaged file raises into one
CheckpointError line.
"""
from __future__ import annotations

import collections
import pickle
import struct
import zipfile

from ..errors import CheckpointError

class Truncated(Exception):
    """Raised by BoundedReader when the stream ends before the bytes a pickle opcode asks for."""


class BoundedReader:
    """A read-only view of a seekable binary file of known size whose reads never over-allocate.

    `read(n)` with n past the end raises Truncated instead of allocating n bytes or returning short data,
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
            raise Truncated(f"wanted {n} bytes at offset {self.tell()}, only {max(self.remaining(), 0)} left")
        data = self._f.read(n)
        if len(data) != n:
            raise Truncated(f"wanted {n} bytes at offset {self.tell()}, got {len(data)}")
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


def refuse_global(path: str, module: str, name: str) -> CheckpointError:
    err = CheckpointError(f"{path}: refused to load: the pickle asks for '{_printable(module)}.{_printable(name)}', "
                          f"which is not a tensor-rebuild function; ppir never runs code from a checkpoint")
    err.refused_global = (module, name)
    return err


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler, so BUILD can be restricted too
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
            raise refuse_global(self._path, str(module), str(name)) from None

    def persistent_load(self, pid):
        if self._persistent is None:
            raise CheckpointError(f"{self._path}: unexpected persistent reference {short_repr(pid)} "
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


def short_repr(obj, limit: int = 80) -> str:
    try:
        text = repr(obj)
    except Exception:  # pragma: no cover - repr of allowed objects does not fail
        text = f"<{type(obj).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def wrap_errors(path: str, what: str, fn, *args):
    """Run fn(*args); turn any failure other than CheckpointError into a one-line CheckpointError."""
    try:
        return fn(*args)
    except CheckpointError:
        raise
    except Truncated as e:
        raise CheckpointError(f"{path}: {what}: the file ends early (truncated? {e})") from None
    except EOFError:
        raise CheckpointError(f"{path}: {what}: the file ends early (truncated?)") from None
    except MemoryError:
        raise CheckpointError(f"{path}: {what}: out of memory") from None
    except RecursionError:
        raise CheckpointError(f"{path}: {what}: the pickle is nested too deeply") from None
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{path}: {what}: damaged zip archive ({one_line(e)})") from None
    except Exception as e:  # pickle.UnpicklingError, struct.error, ValueError, zlib.error, OSError, ...
        raise CheckpointError(f"{path}: {what}: corrupt or unsupported content ({one_line(e)})") from None
