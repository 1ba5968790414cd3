"""Reading and writing images safely: any common kind in, RGB float32 in [0, 1] out; atomic writes
(`ppir.paths.atomic_target`: a temporary file beside the target, then a rename)."""
from __future__ import annotations

import os

import cv2
import numpy as np

from ..errors import ImageError
from ..paths import atomic_target

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def is_image_file(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Encoded image bytes -> HxWx3 RGB float32 in [0, 1] (gray, alpha and 16-bit are converted)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise ImageError(f"{name}: not a readable image (corrupt, truncated or unsupported format)")
    return to_rgb_float(img, name)


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


def to_uint8(img: np.ndarray) -> np.ndarray:
    """RGB float in [0, 1] -> uint8, clipping then rounding to the nearest level."""
    return np.clip(np.rint(np.clip(img, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)


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
