"""The HTTP server, as a user runs it: real `deploy/serving/server.py` processes on free loopback ports, real HTTP
requests (valid, malformed, oversize, concurrent, Paddle Serving format), each server stopped by its PID."""
import base64
import concurrent.futures
import json
import logging
import os
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib

import cv2
import numpy as np
import pytest

try:  # the server's own dependencies (requirements.txt); CI must have them, a user may not
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("fastapi/uvicorn not installed (pip install -r requirements.txt)", allow_module_level=True)

from ppir.infer.deploy_info import read_deploy_info, write_deploy_info  # noqa: E402
from ppir.infer.backends import PaddleInferenceBackend
from ppir.infer.restorer import ImageRestorer
from ppir.serving import launch
from ppir.serving.client import get_json, post_json, post_raw
from ppir.serving.protocol import (JsonText, RequestError, decode_base64, image_size_from_header, looks_like_image,
                                   parse_json, pipeline_image_field)

from conftest import REPO, export_tiny_hinet

SERVER = os.path.join(REPO, "deploy", "serving", "server.py")
CLIENT = os.path.join(REPO, "deploy", "serving", "client.py")
START_TIMEOUT = 180


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def hinet_dir(tiny_hinet_export):
    """A tiny HINet export (dynamic shape) with its model.onnx (conftest's, shared by the run)."""
    return tiny_hinet_export


@pytest.fixture(scope="session")
def fragile_dir(tmp_path_factory):
    """A deliberately inconsistent export: the ONNX model only takes 1x3x64x64, but inference.yml says dynamic
    with 64-pixel tiles. Large images are restored in many tiles (slow: good for filling the queue); an image
    smaller than a tile gets a smaller tile, which ONNX Runtime refuses (a real inference error -> 500)."""
    folder = export_tiny_hinet(str(tmp_path_factory.mktemp("serving_fragile")), input_shape=[1, 3, 64, 64])
    info = read_deploy_info(folder)
    info.input_shape, info.tile, info.tile_overlap = [None, 3, None, None], 64, 16
    write_deploy_info(info, folder)
    return folder


def start_server(log_path, *args):
    return launch.start_server(["--port", "0", *args], log_path, timeout=START_TIMEOUT, cwd=REPO, script=SERVER)


@pytest.fixture(scope="module")
def server(hinet_dir, tmp_path_factory):
    """The default backend (Paddle Inference), two predictors, at most 20000 pixels per image."""
    log_path = str(tmp_path_factory.mktemp("server_log") / "server.log")
    srv = start_server(log_path, "--model_dir", hinet_dir, "--workers", 2, "--queue-size", 16,
                       "--max-pixels", 20000)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def fragile_server(fragile_dir, tmp_path_factory):
    """ONNX Runtime, one predictor and no queue: a second concurrent request gets 503."""
    log_path = str(tmp_path_factory.mktemp("fragile_log") / "server.log")
    srv = start_server(log_path, "--model_dir", fragile_dir, "--backend", "onnxruntime", "--workers", 1,
                       "--queue-size", 0, "--warmup", 0, "--cpu-threads", 1)
    try:
        yield srv
    finally:
        srv.stop()


# ------------------------------------------------------------------------------------------------- helpers
def image(h, w, seed=0, ext=".png") -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, 0.5 + 0.4 * np.sin(xx / 5.0)], -1) * 220
    img = np.clip(base + rng.normal(0, 15, base.shape), 0, 255).astype(np.uint8)
    return cv2.imencode(ext, img)[1].tobytes()


def decode_png(b64: str) -> np.ndarray:
    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"  # lossless PNG out, whatever came in
    return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)


def png_header(width, height) -> bytes:
    """PNG signature + a valid IHDR chunk (correct CRC) and nothing else."""
    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def restore(url, data: bytes, timeout=120):
    return post_json(url + "/image-restoration", {"image": b64(data)}, timeout)


# --------------------------------------------------------------------------------------------------- tests
def test_protocol_helpers():
    assert image_size_from_header(image(37, 53)) == (37, 53)
    assert image_size_from_header(image(37, 53, ext=".jpg")) == (37, 53)
    assert image_size_from_header(image(37, 53, ext=".bmp")) == (37, 53)
    assert image_size_from_header(image(37, 53, ext=".webp")) == (37, 53)
    assert image_size_from_header(png_header(100000, 7)) == (7, 100000)
    # formats whose size used to be known only after decoding (a small file could announce gigapixels)
    for ext in (".tif", ".ppm", ".pgm", ".pbm", ".pam", ".pfm", ".ras", ".hdr", ".jp2", ".avif"):
        img = np.zeros((37, 53, 3), np.float32 if ext in (".pfm", ".hdr") else np.uint8)
        img = img[:, :, 0] if ext in (".pgm", ".pbm") else img
        assert image_size_from_header(cv2.imencode(ext, img)[1].tobytes()) == (37, 53), ext
    assert image_size_from_header(b"not an image") is None
    for ext in (".png", ".jpg", ".bmp", ".webp", ".tif", ".ppm"):
        assert looks_like_image(image(9, 7, ext=ext)), ext
    assert not looks_like_image(b"just text") and not looks_like_image(b"")
    data = image(8, 8)
    wrapped = "data:image/png;base64," + "\n".join(b64(data)[i:i + 20] for i in range(0, len(b64(data)), 20))
    assert decode_base64(wrapped) == data  # data URI prefix and line breaks are accepted
    assert decode_base64(b64(data).rstrip("=")) == data  # so is missing padding
    for bad, status in (("", 400), ("%%%", 400), ("http://example.com/a.png", 422)):
        with pytest.raises(RequestError) as e:
            decode_base64(bad)
        assert e.value.status == status


def test_health_and_loopback_default(server):
    assert server.url.startswith("http://127.0.0.1:")  # no --host given: loopback only
    status, body = get_json(server.url + "/health")
    assert status == 200 and body["errorCode"] == 0 and body["errorMsg"] == "Healthy"
    assert body["result"]["model"] == "HINet" and body["result"]["backend"] == "paddle_inference"
    assert body["result"]["workers"] == 2


def test_valid_request_matches_local_runner(server, hinet_dir):
    data = image(70, 100, seed=1)
    status, _, body = restore(server.url, data)
    assert status == 200, body
    assert body["errorCode"] == 0 and body["errorMsg"] == "Success" and body["logId"]
    out = decode_png(body["result"]["image"])
    assert out.shape == (70, 100, 3) and body["result"]["size"] == [70, 100]
    info = read_deploy_info(hinet_dir)
    local = ImageRestorer(PaddleInferenceBackend(hinet_dir, info), info)(
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255)
    diff = np.abs(out[:, :, ::-1].astype(int) - local.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01  # the same network and pre/post-processing as the runners
    # JPEG, gray and RGBA inputs work too; the answer has the input's size
    gray = cv2.imencode(".png", np.full((33, 47), 128, np.uint8))[1].tobytes()
    rgba = cv2.imencode(".png", np.full((20, 30, 4), 200, np.uint8))[1].tobytes()
    for payload, shape in ((image(50, 60, ext=".jpg"), (50, 60)), (gray, (33, 47)), (rgba, (20, 30))):
        status, _, body = restore(server.url, payload)
        assert status == 200 and decode_png(body["result"]["image"]).shape[:2] == shape


def test_paddle_serving_pipeline_format(server):
    data = image(48, 64, seed=2)
    status, _, body = post_json(server.url + "/image_restoration/prediction",
                                {"key": ["image"], "value": [b64(data)], "logid": 10000})
    assert status == 200 and body["err_no"] == 0 and body["key"] == ["image"]
    out = decode_png(body["value"][0])
    _, _, ref = restore(server.url, data)
    assert np.array_equal(out, decode_png(ref["result"]["image"]))  # the same answer in either format
    # any service name, and the single pair may be named otherwise
    status, _, body = post_json(server.url + "/restore/prediction", {"key": ["x"], "value": [b64(data)]})
    assert status == 200 and body["err_no"] == 0
    # errors come back in the pipeline's format
    status, _, body = post_json(server.url + "/restore/prediction", {"key": ["image"], "value": ["%%%"]})
    assert status == 400 and body["err_no"] == 400 and "base64" in body["err_msg"] and body["value"] == []
    status, _, body = post_json(server.url + "/restore/prediction", {"value": [b64(data)]})
    assert status == 422 and "'key'" in body["err_msg"]


MALFORMED = [  # (name, raw body, expected status, words in errorMsg)
    ("not_json", b"{this is not json", 400, "not valid JSON"),
    ("empty_body", b"", 400, "empty request body"),
    ("json_list", b"[1, 2]", 400, "JSON object"),
    ("missing_field", json.dumps({"img": "abc"}).encode(), 422, "missing field 'image'"),
    ("wrong_type", json.dumps({"image": 123}).encode(), 422, "must be a string"),
    ("bad_base64", json.dumps({"image": "***not base64***"}).encode(), 400, "not valid base64"),
    ("not_an_image", json.dumps({"image": b64(b"just some text, no pixels" * 10)}).encode(), 400, "not a readable"),
    ("truncated_png", json.dumps({"image": b64(image(40, 40)[:60])}).encode(), 400, "not a readable"),
    ("empty_image", json.dumps({"image": ""}).encode(), 400, "empty"),
    ("zero_size", json.dumps({"image": b64(png_header(0, 16))}).encode(), 400, "zero size"),
    ("too_many_pixels_header", json.dumps({"image": b64(png_header(100000, 100000))}).encode(), 413, "pixels"),
    ("too_many_pixels_real", json.dumps({"image": b64(image(150, 150))}).encode(), 413, "--max-pixels"),
    ("url", json.dumps({"image": "https://example.com/x.png"}).encode(), 422, "URLs are not fetched"),
]


def test_malformed_requests_get_4xx_and_server_survives(server):
    before = server.log().count("POST /image-restoration ")
    for name, body, want, words in MALFORMED:
        status, _, raw = post_raw(server.url + "/image-restoration", body)
        answer = json.loads(raw)
        assert status == want, (name, status, answer)
        assert answer["errorCode"] == want and words in answer["errorMsg"], (name, answer)
        assert "result" not in answer
    # wrong routes and methods: JSON envelopes too
    status, _, raw = post_raw(server.url + "/nowhere", b"{}")
    assert status == 404 and "/image-restoration" in json.loads(raw)["errorMsg"]
    status, body = get_json(server.url + "/image-restoration")
    assert status == 405 and body["errorCode"] == 405
    # the server is still up and the next valid request works
    assert server.proc.poll() is None
    status, _, body = restore(server.url, image(40, 40))
    assert status == 200 and body["errorCode"] == 0
    # one log line per request, with the reason for refusals
    time.sleep(0.3)
    log = server.log()
    assert log.count("POST /image-restoration ") - before == len(MALFORMED) + 1
    assert 'error="missing field' in log and "Traceback" not in log


def test_concurrent_requests_all_succeed(server):
    data = image(64, 64, seed=3)
    _, _, ref = restore(server.url, data)
    expected = decode_png(ref["result"]["image"])
    n = 12
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait(30)
        if i % 3 == 0:
            s, _, body = post_json(server.url + "/svc/prediction", {"key": ["image"], "value": [b64(data)]}, 120)
            return s, body.get("value", [None])[0]
        s, _, body = restore(server.url, data)
        return s, (body.get("result") or {}).get("image")

    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        results = list(ex.map(one, range(n)))
    assert [s for s, _ in results] == [200] * n  # 2 predictors + 16 queue slots hold them all
    for _, b in results:
        assert np.array_equal(decode_png(b), expected)  # predictors in parallel threads give the same answer
    status, metrics = get_json(server.url + "/metrics")
    assert status == 200 and metrics["requests_total"] >= n + 1
    lat = metrics["routes"]["image-restoration"]["latency_ms"]
    assert lat["count"] >= n and lat["p50"] > 0 and lat["p99"] >= lat["p50"]
    assert metrics["pool"] == {"workers": 2, "queue_size": 16, "running": 0, "waiting": 0}
    with urllib.request.urlopen(server.url + "/metrics?format=prometheus", timeout=10) as resp:
        text = resp.read().decode()
    assert 'ppir_requests_total{route="image-restoration",status="200"}' in text


def test_client_cli(server, tmp_path):
    src = tmp_path / "in.jpg"
    src.write_bytes(image(45, 61, ext=".jpg"))
    for fmt in ("paddlex", "pipeline"):
        out = tmp_path / f"out_{fmt}.png"
        r = subprocess.run([sys.executable, CLIENT, "--url", server.url, "--image", str(src), "--output", str(out),
                            "--format", fmt], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert cv2.imread(str(out)).shape == (45, 61, 3)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    kept = tmp_path / "x.png"
    kept.write_bytes(b"an earlier result")
    (tmp_path / "x.png.tmp").write_bytes(b"a file of the user's")  # the name the client once wrote through
    before = sorted(os.listdir(tmp_path))
    r = subprocess.run([sys.executable, CLIENT, "--url", server.url, "--image", str(bad), "--output",
                        str(kept)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "HTTP 400" in r.stderr
    assert "Traceback" not in r.stderr
    assert kept.read_bytes() == b"an earlier result" and sorted(os.listdir(tmp_path)) == before
    # a success replaces the output whole, through a temporary of its own: the user's x.png.tmp is untouched
    r = subprocess.run([sys.executable, CLIENT, "--url", server.url, "--image", str(src), "--output", str(kept)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(kept)).shape == (45, 61, 3) and sorted(os.listdir(tmp_path)) == before
    assert (tmp_path / "x.png.tmp").read_bytes() == b"a file of the user's"


def test_busy_server_answers_503_then_recovers(fragile_server):
    data = image(256, 256, seed=4)  # 25 tiles of 64x64: long enough to keep the only predictor busy
    seen = []
    for _ in range(5):  # bounded: a burst of 10 simultaneous requests, until one was turned away
        barrier = threading.Barrier(10)

        def one(_):
            barrier.wait(30)
            return post_raw(fragile_server.url + "/image-restoration", json.dumps({"image": b64(data)}).encode(), 120)

        with concurrent.futures.ThreadPoolExecutor(10) as ex:
            seen = list(ex.map(one, range(10)))
        if any(s == 503 for s, _, _ in seen):
            break
    statuses = [s for s, _, _ in seen]
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    for status, headers, raw in seen:
        if status == 503:
            body = json.loads(raw)
            assert body["errorCode"] == 503 and "busy" in body["errorMsg"] and "retry" in body["errorMsg"]
            assert int(headers["retry-after"]) >= 1
    status, metrics = get_json(fragile_server.url + "/metrics")
    assert metrics["rejected"]["queue_full"] >= statuses.count(503)  # 503s counted by the limit that refused them
    with urllib.request.urlopen(fragile_server.url + "/metrics?format=prometheus", timeout=10) as resp:
        assert 'ppir_rejected_total{reason="queue_full"}' in resp.read().decode()
    status, _, body = restore(fragile_server.url, data)
    assert status == 200 and decode_png(body["result"]["image"]).shape == (256, 256, 3)


def test_long_base64_strings_are_decoded_in_steps():
    """Long image strings are not parsed by json.loads but decoded from the body in 1 MB steps: the result must be
    what json.loads + base64 give, whatever JSON escapes or line breaks the client used, across step boundaries."""
    raw = np.random.default_rng(5).integers(0, 256, 2_500_000, dtype=np.uint8).tobytes()
    text = b64(raw)
    variants = {
        "plain": json.dumps({"image": text, "logId": "a"}),
        "php_slashes": json.dumps({"image": text}).replace("/", "\\/"),
        "line_breaks": json.dumps({"image": "\n".join(text[i:i + 76] for i in range(0, len(text), 76))}),
        "unicode_escapes": json.dumps({"image": text}).replace("Q", "\\u0051"),
        "data_uri_no_padding": json.dumps({"image": "data:image/png;base64," + text.rstrip("=")}),
    }
    for name, body in variants.items():
        data = parse_json(body.encode())
        assert isinstance(data["image"], JsonText), name
        assert bytes(decode_base64(data["image"])) == raw, name
    pipeline = parse_json(json.dumps({"key": ["image"], "value": [text]}).encode())
    assert bytes(decode_base64(pipeline_image_field(pipeline))) == raw
    bad = {"padding_inside": text[:1_500_000] + "==" + text[1_500_000:], "non_ascii": text[:2_000_000] + "é",
           "bad_character": text[:1_048_575] + "*" + text[1_048_576:]}
    for name, value in bad.items():
        with pytest.raises(RequestError) as e:
            decode_base64(parse_json(json.dumps({"image": value}).encode())["image"])
        assert e.value.status == 400 and "not valid base64" in e.value.message, name
    with pytest.raises(RequestError) as e:  # megabytes of JSON outside strings: refused before json.loads
        parse_json(b"[" + b"0," * 1_000_000 + b"0]")
    assert e.value.status == 400 and "besides its long strings" in e.value.message


def test_inference_error_is_500_and_next_request_works(fragile_server):
    status, _, body = restore(fragile_server.url, image(32, 32))  # a 32x32 tile: the ONNX model refuses it
    assert status == 500 and body["errorCode"] == 500 and "inference failed" in body["errorMsg"]
    status, _, body = post_json(fragile_server.url + "/svc/prediction",
                                {"key": ["image"], "value": [b64(image(20, 20))]})
    assert status == 500 and body["err_no"] == 500
    assert fragile_server.proc.poll() is None
    status, _, body = restore(fragile_server.url, image(64, 64))
    assert status == 200 and decode_png(body["result"]["image"]).shape == (64, 64, 3)


def test_bad_start_is_one_line_exit_2(fragile_dir, tmp_path):
    cases = [
        (["--model_dir", str(tmp_path / "missing")], "no such folder"),
        (["--model_dir", fragile_dir, "--backend", "onnxruntime", "--workers", "0"], "--workers"),
        (["--model_dir", fragile_dir, "--max-body-mb", "4", "--max-inflight-mb", "5"], "--max-inflight-mb"),
        # the warm-up run (32x32 on a 64x64-only model) fails: a clear line, not a traceback
        (["--model_dir", fragile_dir, "--backend", "onnxruntime"], "--warmup 0"),
    ]
    for args, words in cases:
        r = subprocess.run([sys.executable, SERVER, "--port", "0", *args], capture_output=True, text=True,
                           timeout=180, cwd=REPO)
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert r.returncode == 2 and len(errors) == 1 and words in errors[0], r.stderr[-2000:]
        assert "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, SERVER, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--max-pixels" in r.stdout and "--workers" in r.stdout


def test_http_parser_is_httptools_and_falls_back_with_a_warning(monkeypatch, caplog):
    # httptools is a requirement (refused large bodies cost the event loop far less than with h11); a server
    # without it still runs, on h11, and says why it may be slower
    from ppir.serving.server import http_parser

    assert http_parser() == "httptools"
    monkeypatch.setitem(sys.modules, "httptools", None)  # import fails, as when it is not installed
    monkeypatch.setattr(logging.getLogger("ppir.serving"), "propagate", True)  # a server run here may unset it
    with caplog.at_level("WARNING", logger="ppir.serving"):
        assert http_parser() == "h11"
    assert "pip install httptools" in caplog.text
