"""Reading and writing images safely: any common kind in, RGB float32 in [0, 1] out; atomic writes
(`ppir.paths.atomic_target`: a temporary file beside the target, then a rename)."""
from __future__ import annotations

import os

import cv2
import numpy as np

from ..errors import ImageError
from .image_header import jpeg_exif_orientation
from ..uint8 import to_uint8  # the one 8-bit conversion (`ppir.uint8`); writers here and readers' users take it
from ..paths import atomic_target

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def is_image_file(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Encoded image bytes -> HxWx3 RGB float32 in [0, 1] (gray, alpha and 16-bit are converted).

    A JPEG's EXIF orientation is applied, so the image is upright as viewers show it (the restored file carries
    no EXIF, so it is shown the same way). A PNG whose text chunks exceed OpenCV's chunk limit (legal, e.g. a
    large embedded comment) is decoded without them."""
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None and bytes(data[:8]) == PNG_SIGNATURE:
        stripped = _png_without_text(data)
        if stripped is not None:
            img = cv2.imdecode(np.frombuffer(stripped, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError(f"{name}: not a readable image (corrupt, truncated or unsupported format)")
    return to_rgb_float(orient(img, jpeg_exif_orientation(data)), name)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT = (b"tEXt", b"zTXt", b"iTXt")


def _png_without_text(data: bytes) -> bytes | None:
    """The PNG with its text chunks left out (they never change pixels), or None when it has none or its chunk
    structure is broken."""
    out, i, dropped = [bytes(data[:8])], 8, False
    while i + 8 <= len(data):
        length = int.from_bytes(data[i:i + 4], "big")
        kind, end = bytes(data[i + 4:i + 8]), i + 12 + length
        if end > len(data):
            return None
        if kind in _PNG_TEXT:
            dropped = True
        else:
            out.append(bytes(data[i:end]))
        i = end
        if kind == b"IEND":
            break
    return b"".join(out) if dropped else None


def orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn decoded pixels (rows, columns first) as the EXIF Orientation tag 1-8 says viewers should show them."""
    if orientation in (5, 6, 7, 8):
        img = img.swapaxes(0, 1)  # 5 transpose; 6, 7, 8 then flip
    if orientation in (2, 3, 6, 7):
        img = img[:, ::-1]
    if orientation in (3, 4, 7, 8):
        img = img[::-1]
    return np.ascontiguousarray(img) if orientation != 1 else img


def to_rgb_float(img: np.ndarray, name: str = "<image>") -> np.ndarray:
    """An OpenCV-decoded array (BGR/BGRA/gray; uint8, uint16 or float) -> HxWx3 RGB float32 in [0, 1]."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    elif img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ImageError(f"{name}: unsupported image layout {img.shape}")
    else:
        img = img[:, :, 2::-1]  # BGR(A) -> RGB, alpha dropped
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageError(f"{name}: the image has zero size")
    if img.dtype == np.uint8:
        out = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        out = img.astype(np.float32) / 65535.0
    elif np.issubdtype(img.dtype, np.floating):
        out = np.clip(img.astype(np.float32), 0.0, 1.0)
    else:
        raise ImageError(f"{name}: unsupported pixel type {img.dtype}")
    return np.ascontiguousarray(out)


def read_image(path: str) -> np.ndarray:
    """Read an image file as HxWx3 RGB float32 in [0, 1]; ImageError names the file on any problem."""
    if not os.path.isfile(path):
        raise ImageError(f"{path}: no such image file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImageError(f"{path}: cannot read: {e.strerror or e}") from None
    return decode_image(data, path)


def encode_image(img_rgb: np.ndarray, ext: str = ".png") -> bytes:
    """RGB float [0, 1] or uint8 -> encoded bytes in the format of `ext`."""
    arr = img_rgb if img_rgb.dtype == np.uint8 else to_uint8(img_rgb)
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(arr[:, :, ::-1]))
    if not ok:
        raise ImageError(f"cannot encode an image as {ext}")
    return buf.tobytes()


def write_image(path: str, img_rgb: np.ndarray) -> None:
    """Write an RGB image atomically (temporary file + rename), so a crash never leaves half a file."""
    ext = os.path.splitext(path)[1].lower() or ".png"
    data = encode_image(img_rgb, ext)
    with atomic_target(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
