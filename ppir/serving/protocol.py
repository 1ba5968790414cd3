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
refused **before decoding** when their header announces more pixels than allowed (PNG, JPEG, BMP, GIF, WebP, TIFF,
PNM/PAM/PFM, Sun raster, Radiance HDR, JPEG 2000 and AVIF sizes are read from their headers; OpenCV's own
``OPENCV_IO_MAX_IMAGE_PIXELS`` limit, which the server sets before OpenCV is loaded, stops anything else before
its pixels are allocated), so a small compressed file cannot make the server allocate a huge image.

Bodies can be large (a 4096x4096 image is ~100 MB of base64), and ``json.loads``, ``re.sub`` or ``b64decode`` on
a string that size hold the GIL for seconds, freezing every other thread of the server (the event loop that
answers ``/health`` included). So long JSON strings are never parsed as a whole: ``parse_json`` parses only the
JSON around them and leaves each as a ``JsonText`` view into the body, which ``decode_base64`` decodes in 1 MB
steps, each a short C call.
"""
from __future__ import annotations

import binascii
import json
import math
import re
import struct
import uuid
import zlib

import cv2
import numpy as np

from ..data.image_header import image_size_from_header, looks_like_image  # noqa: F401 - re-exported
from ..data.image_io import decode_image
from ..errors import ImageError

IMAGE_KEY = "image"
_DATA_URI = re.compile(r"^data:[\w/+.-]*(;[\w=-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = b" \t\n\r\x0b\x0c"  # what base64 text may be wrapped with (the ASCII of regex \\s)
LONG_STRING = 4096  # JSON strings longer than this (bytes) stay in the body as JsonText views
MAX_JSON_AROUND = 1 << 20  # bytes of JSON outside long strings: a request is one small object around its image
STEP = 1 << 20  # bytes of base64 text decoded per C call (a few ms, so other threads get the GIL in between)


class RequestError(Exception):
    """A request the server refuses: `status` is the HTTP status (4xx client fault, 5xx server fault)."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.headers = dict(headers or {})


class ServerBusy(RequestError):
    """The server cannot take the request now: 503 with a Retry-After header. `reason` names the limit that was
    hit (``queue_full``, ``expected_wait``, ``queue_timeout``, ``body_budget``) for ``/metrics``."""

    def __init__(self, message: str, retry_after: float = 1.0, reason: str = "busy"):
        seconds = max(1, int(math.ceil(retry_after)))
        super().__init__(503, f"{message}; retry in {seconds} s", {"Retry-After": str(seconds)})
        self.retry_after = seconds
        self.reason = reason


class JsonText:
    """A long JSON string value left unparsed in the request body (a view, not a copy; JSON escapes included)."""

    __slots__ = ("data",)

    def __init__(self, data: memoryview):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)


TEXT = (str, JsonText)  # what a string field of a parsed request can be


# ------------------------------------------------------------------------------------------------- parsing
def parse_json(body) -> dict:
    """The request body (bytes or bytearray) as a JSON object; 400 when it is empty, not JSON or not an object.
    String values longer than LONG_STRING bytes are JsonText views into `body` (see the module docstring)."""
    if not body or not body.strip():
        raise RequestError(400, "empty request body; send a JSON object such as {\"image\": \"<base64>\"}")
    around, texts = _split_long_strings(body)
    try:
        data = json.loads(around)
    except (UnicodeDecodeError, ValueError) as e:
        raise RequestError(400, f"the request body is not valid JSON ({e})") from None
    except RecursionError:
        raise RequestError(400, "the request body is not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise RequestError(400, f"the request body must be a JSON object, got a JSON {type(data).__name__}")
    return _put_back(data, texts) if texts else data


def _string_end(body, i: int) -> int:
    """Index of the quote that closes the JSON string whose content starts at `i`, -1 when none does."""
    while True:
        q = body.find(b'"', i)
        if q < 0:
            return -1
        k = q
        while k > i and body[k - 1] == 0x5C:  # backslashes before it: an odd count escapes the quote
            k -= 1
        if (q - k) % 2 == 0:
            return q
        i = q + 1


def _split_long_strings(body) -> tuple[bytes, dict]:
    """(the body with each string longer than LONG_STRING replaced by a unique placeholder string, {placeholder:
    JsonText}). Only quotes are looked for (bytes.find), so this is a few short C calls per string; a body with
    more than MAX_JSON_AROUND bytes outside long strings is refused (400) before anything is parsed."""
    if len(body) <= LONG_STRING:
        return bytes(body), {}
    view = memoryview(body)
    token = uuid.uuid4().hex
    parts, texts = [], {}
    pos = start = 0  # parsed up to pos; body[start:pos] is kept as it is
    kept = 0  # bytes of the result before `start`
    while True:
        q = body.find(b'"', pos)
        end = _string_end(body, q + 1) if q >= 0 else -1
        if end < 0:  # no more strings (or an unterminated one: json.loads will say so)
            break
        if end - q - 1 > LONG_STRING:
            key = f"\\u0000{token}:{len(texts)}"  # JSON text of a string no client sends by chance
            parts += [view[start:q], f'"{key}"'.encode()]
            texts[json.loads(f'"{key}"')] = JsonText(view[q + 1:end])
            kept += q - start + len(key) + 2
            start = end + 1
        pos = end + 1
        if kept + pos - start > MAX_JSON_AROUND:
            break
    if kept + len(body) - start > MAX_JSON_AROUND:
        _refuse_large_json(view[:MAX_JSON_AROUND])
    parts.append(view[start:])
    return b"".join(parts), texts


def _refuse_large_json(head) -> None:
    """400 for a body with more than MAX_JSON_AROUND bytes of JSON outside long strings: 'not valid JSON' when its
    first part already is not, else a message saying what the server expects."""
    try:
        json.loads(bytes(head))
    except (UnicodeDecodeError, ValueError) as e:
        if getattr(e, "pos", len(head)) < len(head) - 64:
            raise RequestError(400, f"the request body is not valid JSON ({e})") from None
    except RecursionError:
        raise RequestError(400, "the request body is not valid JSON (nested too deeply)") from None
    raise RequestError(400, f"the request body has more than {MAX_JSON_AROUND} bytes of JSON besides its long "
                            f"strings; send one JSON object with the image as a base64 string")


def _put_back(data: dict, texts: dict) -> dict:
    """Replace the placeholder strings of the parsed object by their JsonText (iteratively: no recursion)."""
    stack = [data]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in list(items):
            if isinstance(v, str):
                if v in texts:
                    node[k] = texts[v]
            elif isinstance(v, (dict, list)):
                stack.append(v)
    return data


def paddlex_image_field(data: dict) -> str:
    """The base64 string of a PaddleX-style request ({"image": ...}); 422 when missing or not a string."""
    if IMAGE_KEY not in data:
        raise RequestError(422, f"missing field 'image' (base64 of a PNG/JPEG file); got fields: "
                                f"{', '.join(sorted(map(str, data))) or 'none'}")
    value = data[IMAGE_KEY]
    if not isinstance(value, TEXT):
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
    if isinstance(keys, TEXT):
        keys = [keys]
    if isinstance(values, TEXT):
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
    if not isinstance(value, TEXT):
        raise RequestError(422, f"the image value must be a base64 string, got {type(value).__name__}")
    return value


def decode_base64(text) -> bytearray:
    """Standard base64 (whitespace ignored, missing '=' padding tolerated, data: URI prefix allowed) of a str or of
    a JsonText (whose JSON escapes, e.g. PHP's '\\/', are resolved here), decoded in STEP-sized pieces."""
    raw = JsonText(memoryview(text.encode("utf-8"))) if isinstance(text, str) else text
    out, pending, first, data = bytearray(), b"", True, raw.data
    pos = 0
    while pos < len(data):
        end = _step_end(data, pos) if isinstance(text, JsonText) else len(data)
        piece = _text_piece(data[pos:end], isinstance(text, JsonText))
        if first:
            piece = _strip_prefix(piece)
            first = False
        pending += piece.translate(None, _WHITESPACE)
        pos = end
        usable = len(pending) // 4 * 4
        if pos < len(data) and usable:
            if b"=" in pending[:usable]:
                _bad_base64("padding '=' before the end")
            out += _a2b(pending[:usable])
            pending = pending[usable:]
    if first:
        _strip_prefix(b"")
    if pending:
        out += _a2b(pending + b"=" * (-len(pending) % 4))
    if not out:
        raise RequestError(400, "the image is empty (zero bytes): send the base64 of a non-empty image file")
    return out


def _step_end(data, pos: int) -> int:
    """End of the next piece: STEP bytes on, moved back so that no JSON escape (at most 6 bytes) is cut."""
    end = min(len(data), pos + STEP)
    if end < len(data):
        cut = bytes(data[end - 6:end]).rfind(b"\\")
        if cut >= 0:
            end -= 6 - cut
    return end


def _text_piece(chunk, escaped: bool) -> bytes:
    """ASCII bytes of a piece of the base64 text; JSON escapes resolved when the piece comes from a JsonText."""
    chunk = bytes(chunk)
    if escaped and b"\\" in chunk:
        try:
            chunk = json.loads(b'"' + chunk + b'"').encode("utf-8")
        except ValueError as e:
            raise RequestError(400, f"the request body is not valid JSON (in the image string: {e})") from None
    if not chunk.isascii():
        _bad_base64("a non-ASCII character")
    return chunk


def _strip_prefix(head: bytes) -> bytes:
    if head.startswith((b"http://", b"https://")):
        raise RequestError(422, "image URLs are not fetched by this server; send the file's bytes as base64")
    m = _DATA_URI.match(head.decode("ascii"))
    return head[m.end():] if m else head


def _a2b(text: bytes) -> bytes:
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as e:
        _bad_base64(str(e))


def _bad_base64(why: str):
    raise RequestError(400, f"field 'image' is not valid base64 ({why})")


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
    except cv2.error as e:  # OPENCV_IO_MAX_IMAGE_PIXELS refused the header's size before allocating the pixels
        if "CV_IO_MAX_IMAGE_PIXELS" in str(e):
            raise RequestError(413, f"the image has more pixels than this server accepts ({max_pixels}); send a "
                                    f"smaller image or start the server with a larger --max-pixels") from None
        raise RequestError(400, f"the uploaded image: not a readable image ({_first_line(e)}); send a PNG, JPEG, "
                                f"BMP, TIFF or WebP file") from None
    check_size(img.shape[0], img.shape[1], max_pixels)
    return img


def _first_line(e: BaseException) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[-1].strip()[:200] if lines else type(e).__name__


def opencv_pixel_limit_active(max_pixels: int) -> bool:
    """Whether OpenCV refuses, from the header alone, an image of more than `max_pixels` pixels (it reads
    OPENCV_IO_MAX_IMAGE_PIXELS once, when it is loaded, so setting it later does nothing). Probed with an empty
    1-bit PNG of side isqrt(max_pixels) + 1: refused at once when in force, else ~max_pixels bytes allocated once."""
    side = math.isqrt(max_pixels) + 1

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", binascii.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    try:
        cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        return "CV_IO_MAX_IMAGE_PIXELS" in str(e)
    return False


# ------------------------------------------------------------------------------------------------ responses
def b64encode_steps(data) -> bytes:
    """base64 of `data` in STEP-sized pieces (each a short C call, see the module docstring)."""
    step = STEP // 4 * 3
    view = memoryview(data)
    return b"".join(binascii.b2a_base64(view[i:i + step], newline=False) for i in range(0, len(view), step))


def paddlex_success(log_id: str, image_b64: bytes, height: int, width: int) -> bytes:
    """The response body, assembled as bytes: base64 needs no JSON escaping, and json.dumps of a long string
    would hold the GIL for as long as it takes."""
    return b"".join([b'{"logId": ', json.dumps(log_id).encode(), b', "errorCode": 0, "errorMsg": "Success", '
                     b'"result": {"image": "', image_b64, f'", "size": [{int(height)}, {int(width)}]}}}}'.encode()])


def paddlex_error(log_id: str, status: int, message: str) -> dict:
    return {"logId": log_id, "errorCode": int(status), "errorMsg": message}


def pipeline_success(image_b64: bytes) -> bytes:
    return b"".join([b'{"err_no": 0, "err_msg": "", "key": ["image"], "value": ["', image_b64, b'"]}'])


def pipeline_error(status: int, message: str) -> dict:
    return {"err_no": int(status), "err_msg": message, "key": [], "value": []}
