"""Image sizes from file headers, without decoding: what every reader of untrusted images judges against its
limits (the server's --max-pixels, the runners' --max-memory) before the decoder allocates a single pixel, so a
small compressed file (a decompression bomb) cannot make ppir allocate a huge image.
"""
from __future__ import annotations

import os
import re
import struct

HEADER_BYTES = 1 << 20  # read from a file before judging it: JPEG's frame header may follow ~64 KB segments


def _jpeg_size(data: bytes):
    i, n = 2, len(data)
    for _ in range(4096):  # segments before the frame header; a file with more is left to the decoder's limit
        if i + 4 > n:
            return None
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


def _tiff_size(data):
    """(height, width) from the first image file directory (the page OpenCV decodes) of a TIFF."""
    e = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(e + "I", data[4:8])
    (count,) = struct.unpack(e + "H", data[offset:offset + 2])
    size = {}
    for k in range(count):
        p = offset + 2 + 12 * k
        tag, kind = struct.unpack(e + "HH", data[p:p + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            fmt = {3: "H", 4: "I"}.get(kind)
            if fmt is None:
                return None
            size[tag] = struct.unpack(e + fmt, data[p + 8:p + 8 + struct.calcsize(fmt)])[0]
            if len(size) == 2:
                return size[257], size[256]
    return None


def _pnm_size(data):
    """PBM/PGM/PPM (P1-P6: magic, width, height as text, # comments), PAM (P7: WIDTH/HEIGHT lines), PFM."""
    head = bytes(data[:4096])
    if head[:2] == b"P7":
        w, h = re.search(rb"\bWIDTH\s+(\d+)", head), re.search(rb"\bHEIGHT\s+(\d+)", head)
        return (int(h.group(1)), int(w.group(1))) if w and h else None
    tokens = re.sub(rb"#[^\n]*", b" ", head[2:]).split()
    if len(tokens) >= 2 and tokens[0].isdigit() and tokens[1].isdigit():
        return int(tokens[1]), int(tokens[0])
    return None


def _hdr_size(data):
    """Radiance HDR: the resolution line after the header, e.g. '-Y 480 +X 640'."""
    m = re.search(rb"\n\s*\n([-+])([XY]) (\d+) ([-+])([XY]) (\d+)", bytes(data[:65536]))
    if not m:
        return None
    first, second = int(m.group(3)), int(m.group(6))
    return (first, second) if m.group(2) == b"Y" else (second, first)


def _jpeg2000_size(data):
    """The codestream's SIZ marker (what the decoder allocates from): image area minus its offset."""
    at = bytes(data[:1 << 20]).find(b"\xff\x4f\xff\x51")
    if at < 0:
        return None
    xs, ys, xo, yo = struct.unpack(">IIII", data[at + 8:at + 24])
    return ys - yo, xs - xo


def _avif_size(data):
    """The largest 'ispe' (image spatial extents) property of an AVIF/HEIF file's meta box."""
    head, sizes, at = bytes(data[:1 << 20]), [], 0
    while (at := head.find(b"ispe", at) + 1) > 0:
        w, h = struct.unpack(">II", head[at + 7:at + 15])
        sizes.append((h * w, h, w))
    return max(sizes)[1:] if sizes else None


def image_size_from_header(data: bytes) -> tuple[int, int] | None:
    """(height, width) from the file header of a PNG, JPEG, BMP, GIF, WebP, TIFF, PNM/PAM/PFM, Sun raster,
    Radiance HDR, JPEG 2000 or AVIF/HEIF file, without decoding; None when the format is another one or the header
    cannot be read (the decoder, under OpenCV's pixel limit, then decides)."""
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
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
        if data[:1] == b"P" and data[1:2] in b"1234567fF" and len(data) > 2:
            return _pnm_size(data)
        if data[:4] == b"\x59\xa6\x6a\x95" and len(data) >= 12:
            w, h = struct.unpack(">II", data[4:12])
            return h, w
        if data[:10] == b"#?RADIANCE" or data[:6] == b"#?RGBE":
            return _hdr_size(data)
        if data[:4] == b"\xff\x4f\xff\x51" or data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":
            return _jpeg2000_size(data)
        if data[4:8] == b"ftyp":
            return _avif_size(data)
    except (struct.error, IndexError, ValueError):
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


def read_header(path: str, nbytes: int = HEADER_BYTES) -> tuple[bytes, int]:
    """(the first `nbytes` of the file, its size in bytes); OSError as open() raises it."""
    with open(path, "rb") as f:
        return f.read(nbytes), os.fstat(f.fileno()).st_size


def jpeg_exif_orientation(data: bytes) -> int:
    """The EXIF Orientation (1-8) of a JPEG file, 1 when it has none or it cannot be read. Viewers show a JPEG
    turned by this tag (a phone held upright writes 6: the pixels are stored sideways)."""
    if data[:2] != b"\xff\xd8":
        return 1
    i, n = 2, min(len(data), HEADER_BYTES)
    try:
        while i + 4 <= n and data[i] == 0xFF:
            marker = data[i + 1]
            if marker == 0xDA:  # start of scan: no more metadata segments
                return 1
            (length,) = struct.unpack(">H", data[i + 2:i + 4])
            if marker == 0xE1 and data[i + 4:i + 10] == b"Exif\x00\x00":
                return _tiff_orientation(bytes(data[i + 10:i + 2 + length]))
            i += 2 + length
    except (struct.error, IndexError, ValueError):
        return 1
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    e = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if e is None:
        return 1
    (ifd,) = struct.unpack(e + "I", tiff[4:8])
    (count,) = struct.unpack(e + "H", tiff[ifd:ifd + 2])
    for k in range(count):
        p = ifd + 2 + 12 * k
        tag, kind = struct.unpack(e + "HH", tiff[p:p + 4])
        if tag == 0x0112 and kind == 3:  # Orientation, SHORT
            (value,) = struct.unpack(e + "H", tiff[p + 8:p + 10])
            return value if 1 <= value <= 8 else 1
    return 1
