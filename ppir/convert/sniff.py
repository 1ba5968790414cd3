"""Tell a weights file's format from its bytes (never from its extension): the one front door of every reader.

Kinds: "torch-zip" (a zip with a data.pkl), "npz" (a zip of .npy files), "torch-legacy" (a pickle stream
that starts with torch.save's magic number), "pickle" (any other pickle stream: paddle.save writes these).
Files no reader handles (missing, a folder, empty, damaged zip, torch's early tar format, safetensors, any
other bytes) raise a one-line CheckpointError here, so every reader and `load_weights` say the same thing.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

from ..errors import CheckpointError
from .safe_pickle import one_line
from .torch_pickle import TORCH_MAGIC

# A legacy torch.save file begins with pickle protocol 2, LONG1 of 10 bytes, then the magic number.
_LEGACY_TORCH_HEAD = b"\x80\x02\x8a\x0a" + TORCH_MAGIC.to_bytes(10, "little")
ANY_WEIGHTS = "a weights file ppir can read (.pdparams, torch .pth/.pt/.pkl, .npz)"


@dataclass
class Sniffed:
    path: str
    size: int
    kind: str


def _check_file(path: str) -> int:
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a weights file")
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {one_line(e)}") from None
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes)")
    return size


def _zip_kind(path: str) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except Exception as e:  # BadZipFile, OSError, NotImplementedError (a corrupt version field), ...
        raise CheckpointError(f"{path}: damaged zip archive ({one_line(e)}); the file may be truncated") from None
    if any(n.endswith("data.pkl") for n in names):
        return "torch-zip"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    raise CheckpointError(f"{path}: a zip archive that is neither a torch checkpoint nor an .npz")


def sniff(path, expected: str = ANY_WEIGHTS) -> Sniffed:
    """The format of the file at `path`; `expected` completes the "not ..." message for unrecognised bytes."""
    path = os.fspath(path)
    size = _check_file(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {one_line(e)}") from None
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return Sniffed(path, size, _zip_kind(path))
    if head.startswith(_LEGACY_TORCH_HEAD):
        return Sniffed(path, size, "torch-legacy")
    if head[:1] == b"\x80":
        return Sniffed(path, size, "pickle")
    if len(head) >= 262 and head[257:262] == b"ustar":
        raise CheckpointError(f"{path}: a checkpoint in the early tar-based torch.save format, which ppir does "
                              f"not read; load it with torch and save it again with a current torch.save")
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        raise CheckpointError(f"{path}: looks like a safetensors file, which ppir does not read")
    raise CheckpointError(f"{path}: not {expected}")
