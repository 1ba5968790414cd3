"""The two request formats the server speaks, and the validation every request goes through.

PaddleX basic serving (``POST /image-restoration``)::

    request   {"image": "<base64 PNG/JPEG/...>", "logId": "optional"}
    success   200 {"logId": "...", "errorCode": 0, "errorMsg": "Success", "result": {"image": "<base64 PNG>",
                   "size": [h, w]}}
    failure   4xx/5xx {"logId": "...", "errorCode": <HTTP status>, "errorMsg": "<what is wrong>"}

Paddle Serving pipeline (``POST /<name>/prediction``, what ``pipeline_http_client.py`` scripts send)::

    request   {"key": ["image"], "value": ["<base64>"], "logid": 10000}
    success   200 {"err_no": 0, "err_msg": "", "key": ["image"], "value": ["<base64 PNG>"]}
    failure   4xx/5xx {"err_no": <HTTP status>, "err_msg": "<what is wrong>", "key": [], "value": []}

(the fields of Paddle Serving's ``pipeline_service.proto`` Response; clients test ``err_no == 0``).

Every check raises ``RequestError(status, message)``; nothing here touches the network or the model. Images are
refused **before decoding** when their header announces more pixels than allowed (PNG, JPEG, BMP, GIF, WebP are
read from their headers; other formats are checked right after decoding), so a small compressed file cannot make
the server allocate a huge image.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import struct

import numpy as np

from ..data.image_io import decode_image
from ..errors import ImageError

IMAGE_KEY = "image"
_DATA_URI = re.compile(r"^data:[\w/+.-]*(;[\w=-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


class RequestError(Exception):
    """A request the server refuses: `status` is the HTTP status (4xx client fault, 5xx server fault)."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.headers = dict(headers or {})


# ------------------------------------------------------------------------------------------------- parsing
def parse_json(body: bytes) -> dict:
    """The request body as a JSON object; 400 when it is empty, not JSON or not an object."""
    if not body or not body.strip():
        raise RequestError(400, "empty request body; send a JSON object such as {\"image\": \"<base64>\"}")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise RequestError(400, f"the request body is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise RequestError(400, f"the request body must be a JSON object, got a JSON {type(data).__name__}")
    return data


def paddlex_image_field(data: dict) -> str:
    """The base64 string of a PaddleX-style request ({"image": ...}); 422 when missing or not a string."""
    if IMAGE_KEY not in data:
        raise RequestError(422, f"missing field 'image' (base64 of a PNG/JPEG file); got fields: "
                                f"{', '.join(sorted(map(str, data))) or 'none'}")
    value = data[IMAGE_KEY]
    if not isinstance(value, str):
        raise RequestError(422, f"field 'image' must be a string (base64 of an image file), "
                                f"got {type(value).__name__}")
    return value


def pipeline_image_field(data: dict) -> str:
    """The base64 string of a Paddle Serving pipeline request ({"key": [...], "value": [...]}).

    The value paired with key "image" is used; a request with a single key/value pair may name it anything
    (PaddleClas-style clients send "image", others "x" or "img")."""
    if "key" not in data or "value" not in data:
        missing = [k for k in ("key", "value") if k not in data]
        raise RequestError(422, f"missing field(s) {', '.join(map(repr, missing))}; a Paddle Serving request "
                                f"looks like {{\"key\": [\"image\"], \"value\": [\"<base64>\"]}}")
    keys, values = data["key"], data["value"]
    if isinstance(keys, str):
        keys = [keys]
    if isinstance(values, str):
        values = [values]
    if not isinstance(keys, list) or not isinstance(values, list):
        raise RequestError(422, "'key' and 'value' must be lists of strings")
    if len(keys) != len(values):
        raise RequestError(422, f"'key' has {len(keys)} entries but 'value' has {len(values)}")
    if not keys:
        raise RequestError(422, "'key' and 'value' are empty; send {\"key\": [\"image\"], \"value\": [\"<base64>\"]}")
    if IMAGE_KEY in keys:
        value = values[keys.index(IMAGE_KEY)]
    elif len(keys) == 1:
        value = values[0]
    else:
        raise RequestError(422, f"no key named 'image' among {keys}")
    if not isinstance(value, str):
        raise RequestError(422, f"the image value must be a base64 string, got {type(value).__name__}")
    return value


def decode_base64(text: str) -> bytes:
    """Standard base64 (whitespace ignored, missing '=' padding tolerated, data: URI prefix allowed)."""
    if text.startswith(("http://", "https://")):
        raise RequestError(422, "image URLs are not fetched by this server; send the file's bytes as base64")
    text = _WHITESPACE.sub("", _DATA_URI.sub("", text, count=1))
    if not text:
        raise RequestError(400, "the image is empty (zero bytes): send the base64 of a non-empty image file")
    if len(text) % 4:
        text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise RequestError(400, f"field 'image' is not valid base64 ({e})") from None
    if not raw:
        raise RequestError(400, "the image is empty (zero bytes): send the base64 of a non-empty image file")
    return raw


# --------------------------------------------------------------------------------------------- image sizes
def _jpeg_size(data: bytes):
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None  # not at a marker: corrupt, let the decoder say so
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn: frame header
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return h, w
        if length < 2:
            return None
        i += 2 + length
    return None


def image_size_from_header(data: bytes) -> tuple[int, int] | None:
    """(height, width) from the file header of a PNG, JPEG, BMP, GIF or WebP, without decoding; None when the
    format is another one or the header cannot be read (the decoder then decides)."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return h, w
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:2] == b"BM" and len(data) >= 26:
            w, h = struct.unpack("<ii", data[18:26])
            return abs(h), abs(w)
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            w, h = struct.unpack("<HH", data[6:10])
            return h, w
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
            chunk = data[12:16]
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return h & 0x3FFF, w & 0x3FFF
            if chunk == b"VP8L":
                b = data[21:25]
                w = 1 + (((b[1] & 0x3F) << 8) | b[0])
                h = 1 + (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
                return h, w
            if chunk == b"VP8X":
                w = 1 + int.from_bytes(data[24:27], "little")
                h = 1 + int.from_bytes(data[27:30], "little")
                return h, w
    except (struct.error, IndexError):
        return None
    return None


# File signatures of the formats OpenCV decodes: bytes matching none of them are refused before they take a
# predictor's time (the decoder, in the predictor thread, still has the last word on the others).
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"GIF87a", b"GIF89a", b"P1", b"P2", b"P3",
          b"P4", b"P5", b"P6", b"P7", b"PF", b"Pf", b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51", b"\x76\x2f\x31\x01",
          b"#?RADIANCE", b"#?RGBE", b"\x59\xa6\x6a\x95", b"\xff\x0a", b"\x00\x00\x00\x0cJXL ")


def looks_like_image(data: bytes) -> bool:
    """Whether the bytes start like an image file OpenCV can decode (PNG, JPEG, BMP, TIFF, WebP, GIF, PNM, JPEG 2000,
    OpenEXR, Radiance HDR, Sun raster, JPEG XL, AVIF/HEIF)."""
    if data.startswith(_MAGIC):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    return data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1")


def check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise RequestError(400, f"the image has zero size ({width}x{height} pixels)")
    if max_pixels and height * width > max_pixels:
        raise RequestError(413, f"the image has {width}x{height} = {height * width} pixels, more than this server "
                                f"accepts ({max_pixels}); send a smaller image or start the server with a larger "
                                f"--max-pixels")


def precheck_image_bytes(raw: bytes, max_pixels: int) -> tuple[int, int] | None:
    """Cheap checks before decoding: a known file signature (400), the header's size against `max_pixels` (413)
    and zero size (400)."""
    if not looks_like_image(raw):
        raise RequestError(400, "the uploaded image: not a readable image (no PNG/JPEG/BMP/TIFF/WebP/... file "
                                "signature); send the bytes of an image file, base64-encoded")
    size = image_size_from_header(raw)
    if size is not None:
        check_size(size[0], size[1], max_pixels)
    return size


def decode_request_image(raw: bytes, max_pixels: int) -> np.ndarray:
    """Encoded bytes -> H x W x 3 RGB float32 in [0, 1]; 400 when not an image, 413 when too large."""
    precheck_image_bytes(raw, max_pixels)
    try:
        img = decode_image(raw, "the uploaded image")
    except ImageError as e:
        raise RequestError(400, f"{e}; send a PNG, JPEG, BMP, TIFF or WebP file") from None
    check_size(img.shape[0], img.shape[1], max_pixels)
    return img


# ------------------------------------------------------------------------------------------------ responses
def paddlex_success(log_id: str, image_b64: str, height: int, width: int) -> dict:
    return {"logId": log_id, "errorCode": 0, "errorMsg": "Success",
            "result": {"image": image_b64, "size": [height, width]}}


def paddlex_error(log_id: str, status: int, message: str) -> dict:
    return {"logId": log_id, "errorCode": int(status), "errorMsg": message}


def pipeline_success(image_b64: str) -> dict:
    return {"err_no": 0, "err_msg": "", "key": [IMAGE_KEY], "value": [image_b64]}


def pipeline_error(status: int, message: str) -> dict:
    return {"err_no": int(status), "err_msg": message, "key": [], "value": []}
