#!/usr/bin/env python
"""Load test of the ppir server on loopback: N requests at concurrency C, some of them malformed on purpose.

  python benchmarks/bench_serving.py --model_dir inference/hinet                 # starts its own server
  python benchmarks/bench_serving.py --model_dir inference/hinet --backend onnxruntime --workers 2 \\
      --requests 400 --concurrency 8 --malformed 0.1 --size 256x256
  python benchmarks/bench_serving.py --url http://127.0.0.1:8080 --image photo.png   # a running server

Each client thread keeps one HTTP/1.1 connection and sends its share of the requests back to back. With
`--malformed F`, a fraction F of the requests (chosen with a fixed seed) is broken in one of six ways: not JSON,
missing field, bad base64, not an image, too many pixels (a PNG header announcing 100000 x 100000), zero-size
image. Valid requests alternate between the PaddleX and the Paddle Serving format (`--format`).

Reported: throughput (all requests, and valid ones), latency percentiles of the valid requests, and the errors:
a valid request that did not get 200 with a PNG of the input's size, a malformed one that did not get its 4xx,
503s (busy; expected only when concurrency exceeds workers + queue size). Exit code 1 when any valid request
failed or the server stopped answering. When it starts the server itself (`--model_dir`) it listens on a free
loopback port, its queue holds `--concurrency` requests, and it is stopped by PID at the end.
"""
import argparse
import base64
import http.client
import json
import os
import struct
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MALFORMED = ("not_json", "missing_field", "bad_base64", "not_an_image", "too_many_pixels", "zero_size")
EXPECTED_STATUS = {"not_json": 400, "missing_field": 422, "bad_base64": 400, "not_an_image": 400,
                   "too_many_pixels": 413, "zero_size": 400}


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature + IHDR announcing width x height, with no pixel data: a 'bomb' rejected from its header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF))


def malformed_body(kind: str, pipeline: bool = False) -> bytes:
    """A broken request of `kind`, in the PaddleX or (pipeline) the Paddle Serving format."""
    def wrap(value: str) -> bytes:
        return json.dumps({"key": ["image"], "value": [value]} if pipeline else {"image": value}).encode()

    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    bodies = {
        "not_json": lambda: b"this is not json {",
        "missing_field": lambda: json.dumps({"key": ["image"]} if pipeline else {"img": "abc"}).encode(),
        "bad_base64": lambda: wrap("%%%not-base64%%%"),
        "not_an_image": lambda: wrap(b64(b"hello, this is text and not an image" * 4)),
        "too_many_pixels": lambda: wrap(b64(png_header_only(100000, 100000))),
        "zero_size": lambda: wrap(b64(png_header_only(0, 16))),
    }
    return bodies[kind]()


def parse_size(text):
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def test_image(path, size):
    import cv2
    import numpy as np

    if path:
        with open(path, "rb") as f:
            data = f.read()
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            sys.exit(f"error: {path}: not a readable image")
        return data, img.shape[:2]
    h, w = size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 9.0) * np.cos(yy / 7.0)], -1) * 200
    img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    return cv2.imencode(".png", img)[1].tobytes(), (h, w)


def png_size(data: bytes):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    w, h = struct.unpack(">II", data[16:24])
    return h, w


# ----------------------------------------------------------------------------------------------- the load
class Client(threading.Thread):
    def __init__(self, host, port, jobs, results, timeout, barrier):
        super().__init__(daemon=True)
        self.host, self.port, self.jobs, self.results, self.timeout = host, port, jobs, results, timeout
        self.barrier = barrier
        self.conn = None

    def request(self, path, body):
        for attempt in range(2):  # one reconnect: the server may close an idle keep-alive connection
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, data
            except (http.client.HTTPException, OSError):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def run(self):
        self.barrier.wait()
        for index, kind, path, body in self.jobs:
            t0 = time.perf_counter()
            try:
                status, data = self.request(path, body)
                error = None
            except Exception as e:  # noqa: BLE001 - counted as a failed request
                status, data, error = 0, b"", f"{type(e).__name__}: {e}"
            self.results[index] = (kind, path, status, data, time.perf_counter() - t0, error)
        if self.conn is not None:
            self.conn.close()


def check_valid(path, status, data, shape):
    """'' when a valid request got 200 with a PNG of the input's size, else what went wrong."""
    if status != 200:
        return f"HTTP {status}"
    try:
        reply = json.loads(data)
        b64 = reply["result"]["image"] if path == "/image-restoration" else reply["value"][0]
        ok = (reply.get("errorCode") == 0) if path == "/image-restoration" else (reply.get("err_no") == 0)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        return f"bad answer ({type(e).__name__})"
    if not ok:
        return "error code in a 200 answer"
    size = png_size(base64.b64decode(b64))
    return "" if size == tuple(shape) else f"output size {size} != input {tuple(shape)}"


def run_load(url, image, shape, requests, concurrency, malformed, fmt, timeout, seed=0):
    import numpy as np

    parsed = urllib.parse.urlparse(url)
    host, port = parsed.hostname, parsed.port or 80
    rng = np.random.default_rng(seed)
    n_bad = int(round(requests * malformed))
    bad_index = set(rng.choice(requests, size=n_bad, replace=False).tolist()) if n_bad else set()
    b64 = base64.b64encode(image).decode()
    paddlex = json.dumps({"image": b64}).encode()
    pipeline = json.dumps({"key": ["image"], "value": [b64]}).encode()
    jobs, k = [], 0
    for i in range(requests):
        if i in bad_index:
            kind = MALFORMED[k % len(MALFORMED)]
            use_pipeline = fmt == "pipeline" or (fmt == "mixed" and (k // len(MALFORMED)) % 2 == 1)
            k += 1
            path = "/image_restoration/prediction" if use_pipeline else "/image-restoration"
            jobs.append((i, kind, path, malformed_body(kind, use_pipeline)))
        else:
            use_pipeline = fmt == "pipeline" or (fmt == "mixed" and i % 2)
            jobs.append((i, "valid", "/image_restoration/prediction" if use_pipeline else "/image-restoration",
                         pipeline if use_pipeline else paddlex))
    results = [None] * requests
    barrier = threading.Barrier(concurrency + 1)
    clients = [Client(host, port, jobs[c::concurrency], results, timeout, barrier) for c in range(concurrency)]
    for c in clients:
        c.start()
    barrier.wait()
    t0 = time.perf_counter()
    for c in clients:
        c.join()
    wall = time.perf_counter() - t0
    return results, wall


def summarize(results, wall, shape):
    import numpy as np

    valid = [r for r in results if r[0] == "valid"]
    bad = [r for r in results if r[0] != "valid"]
    lat = np.array([r[4] for r in valid if r[2] == 200]) * 1000
    failures, busy = [], 0
    for kind, path, status, data, _, error in valid:
        if status == 503:
            busy += 1
        why = error or check_valid(path, status, data, shape)
        if why:
            failures.append(why)
    wrong_bad = [(kind, status) for kind, _, status, *_ in bad if status != EXPECTED_STATUS[kind]]
    return {
        "requests": len(results), "valid": len(valid), "malformed": len(bad), "wall_s": round(wall, 3),
        "throughput_rps": round(len(results) / wall, 2), "valid_throughput_rps": round(len(valid) / wall, 2),
        "restored_rps": round(int(lat.size) / wall, 2),
        "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
                       "p90": round(float(np.percentile(lat, 90)), 1) if lat.size else None,
                       "p99": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
                       "mean": round(float(lat.mean()), 1) if lat.size else None},
        "valid_failed": len(failures), "busy_503": busy, "failure_examples": sorted(set(failures))[:5],
        "malformed_wrong_status": len(wrong_bad), "malformed_wrong_examples": sorted(set(wrong_bad))[:5],
    }


# ------------------------------------------------------------------------------------------------ server
def start_server(args, log_path):
    from ppir.serving.launch import ServerStartError, start_server as launch

    server_args = ["--model_dir", args.model_dir, "--backend", args.backend, "--port", "0", "--workers", args.workers,
                   "--queue-size", args.queue_size if args.queue_size is not None else args.concurrency]
    if args.cpu_threads:
        server_args += ["--cpu-threads", args.cpu_threads]
    if args.enable_mkldnn:
        server_args.append("--enable-mkldnn")
    try:
        return launch(server_args, log_path, timeout=args.start_timeout, cwd=ROOT)
    except ServerStartError as e:
        sys.exit(f"error: {e}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8080")
    target.add_argument("--model_dir", help="start a server on this export folder (stopped at the end)")
    p.add_argument("--backend", choices=("paddle", "onnxruntime"), default="paddle", help="with --model_dir")
    p.add_argument("--workers", type=int, default=2, help="server predictors, with --model_dir (default: %(default)s)")
    p.add_argument("--queue-size", type=int, default=None, help="server queue, with --model_dir (default: concurrency)")
    p.add_argument("--cpu-threads", type=int, default=None, help="threads per predictor, with --model_dir")
    p.add_argument("--enable-mkldnn", action="store_true", help="Paddle Inference with oneDNN, with --model_dir")
    p.add_argument("--requests", "-n", type=int, default=200, help="total requests (default: %(default)s)")
    p.add_argument("--concurrency", "-c", type=int, default=8, help="client threads (default: %(default)s)")
    p.add_argument("--malformed", type=float, default=0.1, help="fraction of broken requests (default: %(default)s)")
    p.add_argument("--format", choices=("paddlex", "pipeline", "mixed"), default="mixed",
                   help="request format of the valid requests (default: %(default)s: alternate)")
    p.add_argument("--image", default=None, help="image to send (default: a synthetic noisy image of --size)")
    p.add_argument("--size", type=parse_size, default=(128, 128), help="HxW of the synthetic image (default 128x128)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default: %(default)s)")
    p.add_argument("--start-timeout", type=float, default=120.0, help="seconds to wait for the server to start")
    p.add_argument("--json", action="store_true", help="print the summary as JSON only")
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or not 0 <= args.malformed < 1:
        sys.exit("error: --requests and --concurrency must be >= 1 and --malformed in [0, 1)")
    image, shape = test_image(args.image, args.size)
    server = None
    url = args.url
    if args.model_dir:
        log_path = os.path.join(tempfile.mkdtemp(prefix="bench_serving_"), "server.log")
        server = start_server(args, log_path)
        url = server.url
    try:
        results, wall = run_load(url, image, shape, args.requests, args.concurrency, args.malformed, args.format,
                                 args.timeout)
        summary = summarize(results, wall, shape)
        from ppir.serving.client import get_json

        status, health = get_json(url.rstrip("/") + "/health")
        summary["healthy_after"] = status == 200 and health.get("errorCode") == 0
        _, metrics = get_json(url.rstrip("/") + "/metrics")
        summary["server_inference_ms"] = metrics.get("inference_ms")
    finally:
        if server is not None:
            server.stop()
    summary.update({"image": f"{shape[1]}x{shape[0]}", "concurrency": args.concurrency, "url": url})
    if args.model_dir:
        summary.update({"backend": args.backend + (" (oneDNN)" if args.enable_mkldnn else ""),
                        "workers": args.workers})
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        lat = summary["latency_ms"]
        print(f"{summary['requests']} requests ({summary['malformed']} malformed) at concurrency {args.concurrency}, "
              f"image {summary['image']}, {wall:.2f} s")
        print(f"throughput: {summary['throughput_rps']} req/s answered, {summary['restored_rps']} images/s restored "
              f"(200 with an image)")
        print(f"latency of valid requests: p50 {lat['p50']} ms, p90 {lat['p90']} ms, p99 {lat['p99']} ms, "
              f"mean {lat['mean']} ms")
        print(f"errors: {summary['valid_failed']} valid request(s) failed ({summary['busy_503']} busy 503), "
              f"{summary['malformed_wrong_status']} malformed request(s) with an unexpected status; "
              f"server healthy afterwards: {summary['healthy_after']}")
        for example in summary["failure_examples"] + [str(x) for x in summary["malformed_wrong_examples"]]:
            print(f"  e.g. {example}")
    return 0 if summary["valid_failed"] == 0 and summary["healthy_after"] else 1


if __name__ == "__main__":
    sys.exit(main())
