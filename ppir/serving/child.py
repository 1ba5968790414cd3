"""Restoring one request's image, in a predictor thread or in a predictor's own child process.

Paddle Inference's Python binding holds the GIL for the whole of ``predictor.run()``: run in a thread of the
server, it stops every other thread, the event loop answering ``/health`` included, for as long as an image takes
(seconds under load). ``PredictorProcess`` therefore runs such a predictor in a child process (``spawn``): the
predictor thread of the server only waits on a pipe, with the GIL released. The child decodes, restores and
encodes (file bytes in, PNG bytes out), so only bytes cross the pipe. A child that dies (a crash, the OOM killer)
fails its request with 500 and is started again for the next one.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import types

from ..data.image_header import HEADER_BYTES
from ..data.image_io import encode_image
from ..errors import ImageError
from ..infer.memory import encoded_image_problem
from .protocol import RequestError, decode_request_image

log = logging.getLogger("ppir.serving")


def short_error(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:300]}" if lines else type(e).__name__


def restore_png(restorer, raw, max_pixels: int) -> tuple[bytes, int, int]:
    """Decode the uploaded file, restore it, encode the result as PNG: (png bytes, height, width)."""
    budget = restorer.planner.budget  # this predictor's share of --max-memory (0 with --tile: tiles bound it)
    problem = encoded_image_problem("the uploaded image", bytes(raw[:HEADER_BYTES]), len(raw), budget)
    if problem:  # judged from the header, before decoding
        raise RequestError(413, problem)
    img = decode_request_image(raw, max_pixels)
    h, w = img.shape[:2]
    try:
        out = restorer(img)
    except RequestError:
        raise
    except ImageError as e:  # the memory planner: not even its smallest tiles fit the budget
        raise RequestError(413, str(e)) from None
    except Exception as e:  # noqa: BLE001 - the model failing is a 500 for this request only
        raise RequestError(500, f"inference failed ({short_error(e)})") from e
    if out.shape[:2] != (h, w):
        raise RequestError(500, f"inference returned a {out.shape[1]}x{out.shape[0]} image for a {w}x{h} input")
    return encode_image(out, ".png"), h, w


def lower_priority() -> None:
    """For a process that only restores (a predictor's child, a Ray Serve replica): inference is the bulk work, the
    server's event loop answers /health, admission and refusals. On a machine with few cores a lower priority here
    keeps those answers prompt while a predictor computes."""
    if hasattr(os, "nice"):
        try:
            os.nice(5)
        except OSError:
            pass


def _child(conn, build, build_args, max_pixels: int) -> None:
    """The child's loop: build the restorer, then answer (file bytes) with ("ok", h, w) + PNG bytes or ("fail",
    status, message), until the server closes the pipe."""
    lower_priority()
    try:
        restorer = build(*build_args)
    except BaseException as e:  # noqa: BLE001 - reported to the server, which exits with its message
        conn.send(("error", type(e).__name__, str(e)))
        return
    conn.send(("ready", restorer.backend.name, getattr(restorer.backend, "device", "")))
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):  # the server is gone
            return
        try:
            png, h, w = restore_png(restorer, raw, max_pixels)
        except RequestError as e:
            conn.send(("fail", e.status, e.message))
            continue
        except Exception as e:  # noqa: BLE001 - this request's failure only
            conn.send(("fail", 500, f"internal error ({short_error(e)})"))
            continue
        finally:
            raw = None
        conn.send(("ok", h, w))
        conn.send_bytes(png)


class PredictorProcess:
    """A restorer `build(*build_args)` living in a child process; `restore(raw)` is `restore_png` over a pipe.
    Used by one predictor thread at a time."""

    in_child_process = True  # what the server's start-up line reports; `close` stops the process

    def __init__(self, build, build_args: tuple, max_pixels: int, name: str = "ppir-predictor"):
        self.build, self.build_args, self.max_pixels, self.name = build, build_args, max_pixels, name
        self.backend = types.SimpleNamespace(name="", device="")
        self._conn = self._proc = None
        self._start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        conn, child_conn = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(child_conn, self.build, self.build_args, self.max_pixels),
                           name=self.name, daemon=True)
        proc.start()
        child_conn.close()
        try:
            message = conn.recv()
        except (EOFError, OSError):
            proc.join(5)
            conn.close()
            raise RuntimeError(f"the predictor process exited with code {proc.exitcode} while starting") from None
        if message[0] == "error":
            proc.join(5)
            conn.close()
            raise _rebuild(message[1], message[2])
        self.backend.name, self.backend.device = message[1], message[2]
        self._conn, self._proc = conn, proc

    def restore(self, raw) -> tuple[bytes, int, int]:
        if self._proc is None or not self._proc.is_alive():
            self.close()
            self._start()
        try:
            self._conn.send_bytes(raw)
            message = self._conn.recv()
            if message[0] == "fail":
                raise RequestError(message[1], message[2])
            return self._conn.recv_bytes(), message[1], message[2]
        except (EOFError, OSError):
            self._proc.join(5)
            code = self._proc.exitcode
            self.close()
            log.warning("the predictor process exited with code %s; starting another", code)
            raise RequestError(500, f"inference failed (the predictor process exited with code {code}); the next "
                                    f"request gets a new one") from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
        self._conn = self._proc = None


def _rebuild(name: str, message: str) -> BaseException:
    """The child's start-up error as the same kind in the server (ConfigError, BackendError, ...: one line)."""
    from .. import errors
    from ..infer import backends

    cls = getattr(errors, name, None) or getattr(backends, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls(message)
    return RuntimeError(f"{name}: {message}")
