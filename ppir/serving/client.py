"""A client for the ppir server, standard library only (urllib): `ppir client` (ppir/commands/client.py,
deploy/serving/client.py), the tests and the benchmark.

    from ppir.serving.client import restore_bytes
    png = restore_bytes("http://127.0.0.1:8080", open("noisy.png", "rb").read())

This module imports nothing from ppir (nor numpy, nor paddle): it runs on a machine with a bare Python.
"""
from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request

FORMATS = ("paddlex", "pipeline")


class ServingError(Exception):
    """The server refused a request or could not be reached (the command line prints it as one line)."""

    exit_code = 2


def post_raw(url: str, body: bytes, timeout: float = 60.0,
             content_type: str = "application/json") -> tuple[int, dict, bytes]:
    """POST `body`; (status, headers with lower-case names, response body) for any HTTP status. URLError when
    nothing answers."""
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, {k.lower(): v for k, v in (e.headers or {}).items()}, e.read()


def post_json(url: str, payload, timeout: float = 60.0) -> tuple[int, dict, dict]:
    status, headers, body = post_raw(url, json.dumps(payload).encode(), timeout)
    try:
        data = json.loads(body)
    except ValueError:
        data = {"raw": body[:200].decode("utf-8", "replace")}
    return status, headers, data


def get_json(url: str, timeout: float = 10.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read() or b"{}")


def check_url(url: str) -> None:
    """ServingError (one line) unless `url` is an http(s) URL with a host: "notaurl" and "http://[::1" would
    otherwise end in urllib's ValueError tracebacks."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname if parts.port is None or parts.port >= 0 else None  # .port parses it: "h:x" fails
    except ValueError as e:
        raise ServingError(f"--url {url!r}: not a valid URL ({e}); e.g. http://127.0.0.1:8080") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ServingError(f"--url {url!r}: not an http(s) URL with a host; e.g. http://127.0.0.1:8080")


def endpoint(url: str, fmt: str = "paddlex", service: str = "image_restoration") -> str:
    """The request URL for a server base URL (a full endpoint URL is kept as given)."""
    check_url(url)
    base = url.rstrip("/")
    path = urllib.parse.urlparse(base).path
    if path.endswith("/image-restoration") or path.endswith("/prediction"):
        return base
    return f"{base}/image-restoration" if fmt == "paddlex" else f"{base}/{service}/prediction"


def make_payload(image_bytes: bytes, fmt: str = "paddlex") -> dict:
    b64 = base64.b64encode(image_bytes).decode("ascii")
    return {"image": b64} if fmt == "paddlex" else {"key": ["image"], "value": [b64]}


RETRIED = (500, 502, 503, 504)  # busy, or the predictor / replica holding the request was lost


def restore_bytes(url: str, image_bytes: bytes, fmt: str = "paddlex", service: str = "image_restoration",
                  timeout: float = 120.0, retries: int = 3) -> bytes:
    """Send an encoded image, return the restored PNG's bytes; ServingError (one line) on any failure.

    A server-side failure (HTTP 500, 502, 503, 504) or a connection dropped mid-request is retried `retries` times,
    after the server's Retry-After hint or 0.5, 1, 2 ... s: restoring has no side effect, so a request is safe to
    send again, and the usual cause is passing (busy, a predictor process or a Ray Serve replica that died while it
    held the request and is being replaced). A server that cannot be reached at all is not retried."""
    target = endpoint(url, fmt, service)
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            status, headers, data = post_json(target, make_payload(image_bytes, fmt), timeout)
        except (http.client.RemoteDisconnected, ConnectionResetError) as e:
            if last:
                raise ServingError(f"{target}: the server closed the connection ({e})") from None
            time.sleep(_backoff(attempt, {}))
            continue
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise ServingError(f"{target}: cannot reach the server ({reason})") from None
        if status in RETRIED and not last:
            time.sleep(_backoff(attempt, headers))
            continue
        break
    if fmt == "paddlex":
        ok = status == 200 and data.get("errorCode") == 0
        message = data.get("errorMsg") or data.get("raw") or ""
        b64 = (data.get("result") or {}).get("image") if ok else None
    else:
        ok = status == 200 and data.get("err_no") == 0
        message = data.get("err_msg") or data.get("raw") or ""
        values = data.get("value") or []
        b64 = values[0] if ok and values else None
    if not ok or not isinstance(b64, str):
        raise ServingError(f"{target}: HTTP {status}: {message or 'no image in the answer'}")
    return base64.b64decode(b64)


def _backoff(attempt: int, headers: dict) -> float:
    """Seconds before retry `attempt` + 1: the server's Retry-After when it sent one, else 0.5 s doubling."""
    try:
        return min(30.0, float(headers["retry-after"]))
    except (KeyError, ValueError):
        return min(30.0, 0.5 * 2 ** attempt)
