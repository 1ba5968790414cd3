"""ppir.serving.client retries what a lost predictor or Ray Serve replica causes (a 5xx, a dropped connection) and
nothing else: a scripted HTTP server on 127.0.0.1 answers each request with the next scripted reply."""
import base64
import http.server
import json
import threading

import pytest

from ppir.serving.client import ServingError, restore_bytes

PNG = b"\x89PNG fake"


class Script(http.server.BaseHTTPRequestHandler):
    replies: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        reply = self.replies.pop(0)
        self.seen.append(reply)
        if reply == "drop":
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        body = (json.dumps({"logId": "x", "errorCode": 0, "errorMsg": "Success",
                            "result": {"image": base64.b64encode(PNG).decode(), "size": [1, 1]}}) if reply == 200
                else json.dumps({"logId": "x", "errorCode": reply, "errorMsg": f"scripted {reply}"})).encode()
        self.send_response(reply)
        if reply == 503:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Script)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Script.seen = []
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_lost_replica_answers_and_dropped_connections_are_retried(scripted):
    _, url = scripted
    Script.replies = [503, 500, "drop", 200]
    assert restore_bytes(url, b"img", retries=3) == PNG
    assert Script.seen == [503, 500, "drop", 200]


def test_client_errors_are_not_retried_and_retries_are_bounded(scripted):
    _, url = scripted
    Script.replies = [400, 200]
    with pytest.raises(ServingError, match="HTTP 400: scripted 400"):
        restore_bytes(url, b"img", retries=3)
    assert Script.seen == [400]
    Script.replies, Script.seen = [503, 503, 200], []
    with pytest.raises(ServingError, match="HTTP 503"):
        restore_bytes(url, b"img", retries=1)
    assert Script.seen == [503, 503]
