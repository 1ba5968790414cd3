"""Reading and writing images safely: any common kind in, RGB float32 in [0, 1] out; atomic writes.

Atomic writes go through a temporary file beside the target, named ``.<target name>.ppir-<pid>-<8 hex>.tmp``,
then renamed over the target. The file is created like a plain ``open()`` would (mode 0666 minus the umask).
A process killed mid-write leaves its temporary file behind; `sweep_stale_temps` removes exactly those: the
name must match the pattern *and* the writer's pid must be gone, so neither a user's file that merely looks
alike nor a file another live run is still writing is ever touched.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets

import cv2
import numpy as np

from ..errors import ImageError

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


_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.ppir-(?P<pid>[1-9][0-9]{0,9})-[0-9a-f]{8}\.tmp$")


def _temp_name(target_name: str) -> str:
    return f".{target_name}.ppir-{os.getpid()}-{secrets.token_hex(4)}.tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: the pid exists but belongs to someone else
        return True
    return True


def sweep_stale_temps(folder: str, target_name: str | None = None) -> list[str]:
    """Remove the temporary files that killed ppir writers left in `folder` (all, or those for `target_name`);
    returns the removed paths. Only regular files matching `_TEMP_NAME` whose writer pid is gone are removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:  # no folder yet: nothing to sweep
        return removed
    for name in names:
        m = _TEMP_NAME.match(name)
        if not m or (target_name is not None and m["target"] != target_name):
            continue
        pid = int(m["pid"])
        path = os.path.join(folder, name)
        if pid == os.getpid() or _pid_alive(pid) or not os.path.isfile(path) or os.path.islink(path):
            continue
        with contextlib.suppress(OSError):
            os.remove(path)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_target(path: str):
    """Yield a fresh temporary path beside `path` (created empty, mode 0666 minus the umask, like open()); on
    success it is renamed over `path`, on any error or interrupt it is removed. Writes never leave half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, _temp_name(os.path.basename(path)))
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0666 & ~umask, as open() would
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_image(path: str, img_rgb: np.ndarray) -> None:
    """Write an RGB image atomically (temporary file + rename), so a crash never leaves half a file."""
    ext = os.path.splitext(path)[1].lower() or ".png"
    data = encode_image(img_rgb, ext)
    with atomic_target(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
