"""Issue 25 case 12: idle TCP connections cannot lock the server. 300 sockets that send nothing (more than
--max-connections) leave /health answering within 1 s; they and a slow-loris client are closed after
--header-timeout. One real server process on a free loopback port; every socket goes to 127.0.0.1 only, and the
test is bounded in count (300 + a few) and time (a few seconds)."""
import os
import socket
import time

import pytest

try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("fastapi/uvicorn not installed (pip install -r requirements.txt)", allow_module_level=True)

from conftest import REPO, export_tiny_hinet  # noqa: E402
from ppir.serving import launch  # noqa: E402
from ppir.serving.client import get_json  # noqa: E402

IDLE = 300
HEADER_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model_dir = export_tiny_hinet(str(tmp_path_factory.mktemp("idle_hinet")))
    log_path = str(tmp_path_factory.mktemp("idle") / "server.log")
    srv = launch.start_server(["--port", "0", "--model_dir", model_dir, "--backend", "onnxruntime",
                               "--max-connections", "256", "--header-timeout", str(HEADER_TIMEOUT)],
                              log_path, timeout=180, cwd=REPO,
                              script=os.path.join(REPO, "deploy", "serving", "server.py"))
    yield srv
    srv.stop()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.5)
    try:
        return sock.recv(1) == b""
    except (socket.timeout, BlockingIOError):
        return False
    except OSError:  # reset by the server: closed too
        return True


def test_health_answers_within_a_second_while_300_idle_sockets_are_open(server):
    port = _port(server.url)
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(IDLE)]
    try:
        opened = time.monotonic()
        start = time.perf_counter()
        status, body = get_json(server.url + "/health", timeout=5)
        took = time.perf_counter() - start
        assert status == 200 and body["errorMsg"] == "Healthy", body
        assert took < 1.0, f"/health took {took:.2f} s with {IDLE} idle sockets open"
        time.sleep(max(0.0, opened + HEADER_TIMEOUT + 1.0 - time.monotonic()))
        closed = sum(_closed_by_server(s) for s in idle[:20])
        assert closed == 20, f"only {closed} of 20 idle sockets were closed after --header-timeout"
    finally:
        for s in idle:
            s.close()


def test_a_slow_loris_head_is_closed_after_the_header_timeout(server):
    port = _port(server.url)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the head never ends
        time.sleep(HEADER_TIMEOUT + 1.0)
        assert _closed_by_server(sock)
    status, _ = get_json(server.url + "/health", timeout=5)
    assert status == 200


def test_a_request_sent_in_time_is_answered_on_a_kept_connection(server):
    port = _port(server.url)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        time.sleep(HEADER_TIMEOUT / 2)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200")
