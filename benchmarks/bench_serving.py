#!/usr/bin/env python
"""Load-and-abuse test of the ppir server on loopback: N requests at concurrency C, some malformed on purpose,
while other clients send bombs, oversized and huge bodies and trickle bodies slowly.

  python benchmarks/bench_serving.py --model_dir inference/hinet                 # starts its own server
  python benchmarks/bench_serving.py --model_dir inference/hinet --backend onnxruntime --workers 2 \\
      --requests 400 --concurrency 16 --malformed 0.1 --size 256x256
  python benchmarks/bench_serving.py --model_dir inference/hinet --huge 14 --huge-mb 130 --slow 8 --bombs 10
  python benchmarks/bench_serving.py --url http://127.0.0.1:8080 --image photo.png   # a running server
  python benchmarks/bench_serving.py --model_dir inference/hinet --engine ray --replicas 1,2   # one run per count

Each client thread keeps one HTTP/1.1 connection and sends its share of the requests back to back. With
`--malformed F`, a fraction F of the requests (chosen with a fixed seed) is broken in one of eight ways: not JSON,
missing field, bad base64, not an image, too many pixels (a PNG header announcing 100000 x 100000), zero-size
image, JSON nested 100000 deep, a 12000 x 12000 TIFF of 18 KB. Valid requests alternate between the PaddleX and
the Paddle Serving format (`--format`).

Abuse, alongside the load: `--bombs` more TIFF bombs, `--oversized` requests announcing a 10 GB body (headers only),
`--huge` concurrent bodies of `--huge-mb` MB that hold no image (under the default per-request limit), and
`--slow` clients that announce 1 MB and send 1 KB every 0.2 s until the load is over. Meanwhile `/health` is
polled every 50 ms and the server's RSS sampled (when the benchmark started the server, or with --server-pid).

Reported: throughput (all requests, and valid ones), latency percentiles of the valid requests, valid requests
that did not get 200 with a PNG of the input's size, malformed ones that did not get their 4xx, what the abuse got,
the peak server RSS (and after the run), and the worst /health latency. Exit code 1 when any valid request failed
or the server stopped answering. When it starts the server itself (`--model_dir`) it uses the server's default
options except those given here, listens on a free loopback port, and is stopped by PID at the end.
"""
import argparse
import base64
import http.client
import json
import os
import platform
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppir.cli import BOOL, ArgumentParser, both_spellings  # noqa: E402  (the flag rules of every ppir tool)
from ppir.paths import output_file_problem, write_text  # noqa: E402

MALFORMED = ("not_json", "missing_field", "bad_base64", "not_an_image", "too_many_pixels", "zero_size",
             "deep_nesting", "tiff_bomb")
EXPECTED_STATUS = {"not_json": 400, "missing_field": 422, "bad_base64": 400, "not_an_image": 400,
                   "too_many_pixels": 413, "zero_size": 400, "deep_nesting": 400, "tiff_bomb": 413}
MB = 1 << 20


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature + IHDR announcing width x height, with no pixel data: a 'bomb' rejected from its header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF))


def tiff_bomb(width: int = 12000, height: int = 12000) -> bytes:
    """A 1-bit TIFF of width x height zeros in one Deflate strip (18 KB for 12000 x 12000): refused from its header
    by a server that reads TIFF headers, decoded to gigabytes by one that does not."""
    data = zlib.compress(bytes((width + 7) // 8 * height), 9)
    tags = [(256, 4, width), (257, 4, height), (258, 3, 1), (259, 3, 8), (262, 3, 1), (273, 4, 0), (277, 3, 1),
            (278, 4, height), (279, 4, len(data))]
    start = 8 + 2 + 12 * len(tags) + 4
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        value = start if tag == 273 else value
        ifd += struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3
                                                    else struct.pack("<I", value))
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + data


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
        "deep_nesting": lambda: b"[" * 100000,
        "tiff_bomb": lambda: wrap(b64(tiff_bomb())),
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
    not_4xx = [(kind, status) for kind, _, status, *_ in bad if not 400 <= status < 500]
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
        "malformed_not_4xx": len(not_4xx),
    }


# ----------------------------------------------------------------------------------------------- the abuse
def rss_bytes(pid) -> int:
    """RSS of process `pid` and all its descendants (the server's predictor processes), 0 when unknown."""
    if not pid:
        return 0
    total = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                total += sum(rss_bytes(int(child)) for child in f.read().split())
    except (OSError, StopIteration, ValueError):
        pass
    return total


def _monitor(url, pid, period, stop, results):
    """Polls /health every `period` s (worst latency, failures) and samples the server's RSS, in a process of its
    own: in this one, the client threads' work would delay the polls and count against the server."""
    sys.path.insert(0, ROOT)
    from ppir.serving.client import get_json

    polls = failed = peak = 0
    latencies = []
    while not stop.is_set():
        peak = max(peak, rss_bytes(pid))
        t0 = time.perf_counter()
        try:
            status, body = get_json(url.rstrip("/") + "/health", timeout=30)
            ok = status == 200 and body.get("errorCode") == 0
        except Exception:  # noqa: BLE001 - a failed health check is what is counted
            ok = False
        latencies.append(time.perf_counter() - t0)
        polls, failed = polls + 1, failed + (not ok)
        stop.wait(period)
    latencies = sorted(latencies) or [0.0]
    results.put({"polls": polls, "failed": failed, "worst_s": latencies[-1], "p50_s": latencies[len(latencies) // 2],
                 "p99_s": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], "peak_rss": peak})


class Monitor:
    def __init__(self, url, pid=None, period=0.05):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.pid, self.stop, self.results = pid, ctx.Event(), ctx.Queue()
        self.proc = ctx.Process(target=_monitor, args=(url, pid, period, self.stop, self.results), daemon=True)

    def start(self):
        self.proc.start()

    def finish(self) -> dict:
        self.stop.set()
        out = self.results.get(timeout=60)
        self.proc.join(10)
        return out


def post_status(host, port, body: bytes, timeout=300.0):
    """Status of one POST /image-restoration, or the name of the error that ended it."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/image-restoration", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (http.client.HTTPException, OSError) as e:
        return type(e).__name__
    finally:
        conn.close()


def headers_only(host, port, length: int, timeout=30.0):
    """Status of a POST that announces `length` body bytes and sends none: answered without reading the body?"""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"POST /image-restoration HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode())
        resp = http.client.HTTPResponse(sock)
        try:
            resp.begin()
            return resp.status
        except (http.client.HTTPException, OSError) as e:
            return type(e).__name__


def slow_client(host, port, stop_event, length=MB, piece=1024, every=0.2):
    """Announce `length` bytes and trickle them until told to stop (or done); returns what the server said."""
    try:
        with socket.create_connection((host, port), timeout=60) as sock:
            sock.sendall(f"POST /image-restoration HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {length}\r\n\r\n".encode())
            sent = 0
            while sent < length and not stop_event.wait(every):
                sock.sendall(b"A" * min(piece, length - sent))
                sent += piece
            return "held" if sent < length else "sent"
    except OSError as e:
        return type(e).__name__


def run_abuse(url, args, stop_event):
    """Start the abuse threads; returns (threads, results dict filled in as they finish)."""
    parsed = urllib.parse.urlparse(url)
    host, port = parsed.hostname, parsed.port or 80
    results = {"bombs": [], "oversized": [], "huge": [], "slow": []}
    lock = threading.Lock()

    def record(key, fn, *a):
        t0 = time.perf_counter()
        status = fn(*a)
        with lock:
            results[key].append((status, time.perf_counter() - t0))

    threads = []
    bomb = json.dumps({"image": base64.b64encode(tiff_bomb()).decode()}).encode()
    for _ in range(args.bombs):
        threads.append(threading.Thread(target=record, args=("bombs", post_status, host, port, bomb)))
    for _ in range(args.oversized):
        threads.append(threading.Thread(target=record, args=("oversized", headers_only, host, port, 10 << 30)))
    if args.huge:
        # valid base64 of zeros: read, parsed and decoded in full before it turns out to hold no image
        huge = b'{"image": "' + b"AAAA" * int(args.huge_mb * MB / 4) + b'"}'
        for _ in range(args.huge):
            threads.append(threading.Thread(target=record, args=("huge", post_status, host, port, huge)))
    for _ in range(args.slow):
        threads.append(threading.Thread(target=record, args=("slow", slow_client, host, port, stop_event)))
    for t in threads:
        t.daemon = True
        t.start()
    return threads, results


def tally(pairs):
    """'413 x3 (worst 0.1 s)'-style summary of (status, seconds) pairs."""
    if not pairs:
        return "-"
    counts = {}
    for status, _ in pairs:
        counts[status] = counts.get(status, 0) + 1
    text = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))
    return f"{text} (slowest answer {max(sec for _, sec in pairs):.2f} s)"


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        return (f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs "
                f"({fields.get('Thread(s) per core', '?').strip()} thread(s) per core)")
    except (OSError, subprocess.SubprocessError, ValueError):
        return platform.processor() or "unknown CPU"


# ------------------------------------------------------------------------------------------------ server
def start_server(args, log_path, replicas=None):
    from ppir.serving.launch import ServerStartError, start_server as launch

    server_args = ["--model_dir", args.model_dir, "--backend", args.backend, "--port", "0"]
    if args.engine == "ray":
        server_args += ["--engine", "ray", "--replicas", replicas]
        if args.ray_address:
            server_args += ["--ray-address", args.ray_address]
    for flag, value in (("--workers", args.workers), ("--queue-size", args.queue_size)):
        if value is not None:
            server_args += [flag, value]
    if args.cpu_threads:
        server_args += ["--cpu-threads", args.cpu_threads]
    if args.enable_mkldnn:
        server_args.append("--enable-mkldnn")
    try:
        return launch(server_args, log_path, timeout=args.start_timeout, cwd=ROOT)
    except ServerStartError as e:
        sys.exit(f"error: {e}")


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=__doc__.split("\n", 2)[2])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8080")
    target.add_argument(*both_spellings(["--model_dir"]), dest="model_dir",  # a group's add_argument: no rules
                        help="start a server on this export folder (stopped at the end)")
    p.add_argument("--backend", choices=("paddle", "onnxruntime"), default="paddle", help="with --model_dir")
    p.add_argument("--workers", type=int, default=None,
                   help="server predictors, with --model_dir (default: the server's)")
    p.add_argument("--queue-size", type=int, default=None, help="server queue, with --model_dir (default: the server's)")
    p.add_argument("--server-pid", type=int, default=None, help="with --url: the server's PID, to sample its RSS")
    p.add_argument("--cpu-threads", type=int, default=None, help="threads per predictor, with --model_dir")
    p.add_argument("--enable-mkldnn", **BOOL, default=False, help="Paddle Inference with oneDNN, with --model_dir")
    p.add_argument("--requests", "-n", type=int, default=200, help="total requests (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=8, help="client threads (default: %(default)s)")
    p.add_argument("--malformed", type=float, default=0.1, help="fraction of broken requests (default: %(default)s)")
    p.add_argument("--format", choices=("paddlex", "pipeline", "mixed"), default="mixed",
                   help="request format of the valid requests (default: %(default)s: alternate)")
    p.add_argument("--image", default=None, help="image to send (default: a synthetic noisy image of --size)")
    p.add_argument("--size", type=parse_size, default=(128, 128), help="HxW of the synthetic image (default 128x128)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default: %(default)s)")
    p.add_argument("--start-timeout", type=float, default=120.0, help="seconds to wait for the server to start")
    p.add_argument("--bombs", type=int, default=4, help="TIFF bombs sent alongside (default: %(default)s)")
    p.add_argument("--oversized", type=int, default=4,
                   help="requests announcing a 10 GB body, headers only (default: %(default)s)")
    p.add_argument("--huge", type=int, default=4,
                   help="concurrent huge bodies without an image in them (default: %(default)s)")
    p.add_argument("--huge-mb", type=float, default=125.0,
                   help="size of each huge body in MiB (default: %(default)s, under the default per-request limit)")
    p.add_argument("--slow", type=int, default=8, help="clients trickling 1 KB every 0.2 s (default: %(default)s)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="with --model_dir: the server's engine (ray: Ray Serve replicas; default: %(default)s)")
    p.add_argument("--replicas", default="1",
                   help="with --engine ray: replica counts, comma-separated; one server and run per count, then a "
                        "table side by side (default: %(default)s)")
    p.add_argument("--ray-address", default=None, help="with --engine ray: a running cluster (default: a private Ray)")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per configuration (a new server each), then a table of medians (default: %(default)s)")
    p.add_argument("--json", help="also write the summary as JSON to this file")
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or not 0 <= args.malformed < 1:
        sys.exit("error: --requests and --concurrency must be >= 1 and --malformed in [0, 1)")
    if args.json and (problem := output_file_problem(args.json)):
        sys.exit(f"error: --json: {problem}")
    image, shape = test_image(args.image, args.size)
    counts = [int(c) for c in args.replicas.split(",") if c.strip()] if args.engine == "ray" else [None]
    summaries = []
    for _ in range(args.repeat):  # interleaved: a busy spell of the (shared) machine hits every count alike
        for replicas in counts:
            summary, wall = measure(args, image, shape, replicas)
            print_table(summary, args, wall)
            summaries.append(summary)
    if len(summaries) > 1:
        print_medians(summaries, args)
    if args.json:
        write_text(args.json, json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=1))
    return 0 if all(s["valid_failed"] == 0 and s["healthy_after"] for s in summaries) else 1


def measure(args, image, shape, replicas=None):
    """One server (started here with --model_dir, `replicas` with --engine ray), the load and the abuse."""
    server = None
    url = args.url
    if args.model_dir:
        log_path = os.path.join(tempfile.mkdtemp(prefix="bench_serving_"), "server.log")
        server = start_server(args, log_path, replicas)
        url = server.url
    monitor = Monitor(url, server.proc.pid if server else args.server_pid)
    stop_event = threading.Event()
    try:
        rss_start = rss_bytes(monitor.pid)
        monitor.start()
        abusers, abuse = run_abuse(url, args, stop_event)
        results, wall = run_load(url, image, shape, args.requests, args.concurrency, args.malformed, args.format,
                                 args.timeout)
        stop_event.set()
        for t in abusers:
            t.join(args.timeout)
        watched = monitor.finish()
        summary = summarize(results, wall, shape)
        from ppir.serving.client import get_json

        status, health = get_json(url.rstrip("/") + "/health")
        summary["healthy_after"] = status == 200 and health.get("errorCode") == 0
        _, metrics = get_json(url.rstrip("/") + "/metrics")
        summary["server_inference_ms"] = metrics.get("inference_ms")
        summary["server_rejected"] = metrics.get("rejected")
        time.sleep(1.0)  # let the server finish trimming after the last large request
        rss_after = rss_bytes(monitor.pid)
    finally:
        stop_event.set()
        if server is not None:
            server.stop(timeout=60)
    summary.update({"image": f"{shape[1]}x{shape[0]}", "concurrency": args.concurrency, "url": url,
                    "cpu": cpu_model(), "abuse": {k: tally(v) for k, v in abuse.items()},
                    "health_polls": watched["polls"], "health_failed": watched["failed"],
                    "health_worst_ms": round(watched["worst_s"] * 1000, 1),
                    "health_p50_ms": round(watched["p50_s"] * 1000, 1),
                    "health_p99_ms": round(watched["p99_s"] * 1000, 1),
                    "rss_mb": {"start": round(rss_start / MB), "peak": round(watched["peak_rss"] / MB),
                               "after": round(rss_after / MB)} if monitor.pid else None})
    if args.model_dir:
        summary.update({"backend": args.backend + (" (oneDNN)" if args.enable_mkldnn else ""),
                        "workers": args.workers or 1, "engine": args.engine, "replicas": replicas})
    return summary, wall


def print_medians(summaries, args):
    """The runs side by side: medians over --repeat for each replica count (or the local server)."""
    print(f"\nmachine: {summaries[0]['cpu']}; medians of {args.repeat} run(s); image {summaries[0]['image']}, "
          f"{args.requests} requests from {args.concurrency} clients")
    print("| server | restored requests/s | p50 latency (ms) | p90 latency (ms) | worst /health (ms) | valid failed |")
    print("|---|---|---|---|---|---|")
    for count in dict.fromkeys(s.get("replicas") for s in summaries):
        runs = [s for s in summaries if s.get("replicas") == count]
        name = f"ray, {count} replica(s)" if count else f"local, {runs[0].get('workers', '?')} worker(s)"

        def med(key, sub=None):
            return round(statistics.median(r[key][sub] if sub else r[key] for r in runs), 1)

        print(f"| {name} | {med('restored_rps')} | {med('latency_ms', 'p50')} | {med('latency_ms', 'p90')} | "
              f"{med('health_worst_ms')} | {sum(r['valid_failed'] for r in runs)} |")


def print_table(summary, args, wall):
    lat, rss = summary["latency_ms"], summary["rss_mb"]
    rows = [
        ("machine", summary["cpu"]),
        ("load", f"{summary['requests']} requests ({summary['malformed']} malformed) from {args.concurrency} clients, "
                 f"image {summary['image']}, {wall:.1f} s"),
        ("requests/s", f"{summary['throughput_rps']} answered, {summary['restored_rps']} restored"),
        ("latency of valid requests", f"p50 {lat['p50']} / p90 {lat['p90']} / p99 {lat['p99']} ms"),
        ("valid requests failed", f"{summary['valid_failed']} of {summary['valid']} ({summary['busy_503']} got 503)"),
        ("malformed not 4xx", f"{summary['malformed_not_4xx']} of {summary['malformed']} "
                              f"({summary['malformed_wrong_status']} with another status than expected)"),
        ("TIFF bombs (12000x12000, 18 KB)", summary["abuse"]["bombs"]),
        ("oversized (10 GB announced)", summary["abuse"]["oversized"]),
        (f"huge bodies ({args.huge} x {args.huge_mb:g} MB, no image)", summary["abuse"]["huge"]),
        (f"slow clients ({args.slow})", summary["abuse"]["slow"]),
        ("503s by reason (server)", ", ".join(f"{k} {v}" for k, v in (summary["server_rejected"] or {}).items())),
        ("peak server RSS (+ predictor processes)", f"{rss['peak']} MB (at start {rss['start']} MB, 1 s after the run {rss['after']} MB)"
                            if rss else "unknown (pass --server-pid)"),
        ("worst /health latency", f"{summary['health_worst_ms']} ms (p50 {summary['health_p50_ms']} ms, p99 "
                                  f"{summary['health_p99_ms']} ms; {summary['health_polls']} polls, "
                                  f"{summary['health_failed']} failed)"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"| {'':{width}} | result |")
    print(f"|{'-' * (width + 2)}|--------|")
    for k, v in rows:
        print(f"| {k:{width}} | {v} |")
    for example in summary["failure_examples"] + [str(x) for x in summary["malformed_wrong_examples"]]:
        print(f"  e.g. {example}")


if __name__ == "__main__":
    sys.exit(main())
