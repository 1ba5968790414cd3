"""Request counters and latency percentiles behind ``GET /metrics`` (JSON, or Prometheus text with
``?format=prometheus``): counts by route and status, requests refused with 503 by the limit that refused them,
the queue's length and the bytes of bodies in flight. Thread-safe; latencies are kept for the last `window`
requests of each route."""
from __future__ import annotations

import collections
import threading
import time

import numpy as np

QUANTILES = (0.5, 0.9, 0.99)
REJECTIONS = ("queue_full", "expected_wait", "queue_timeout", "body_budget")  # ServerBusy reasons


def _summary(values) -> dict:
    if not values:
        return {"count": 0}
    arr = np.asarray(values, np.float64) * 1000.0
    out = {"count": int(arr.size), "mean": round(float(arr.mean()), 3)}
    for q in QUANTILES:
        out[f"p{int(q * 100)}"] = round(float(np.quantile(arr, q)), 3)
    out["max"] = round(float(arr.max()), 3)
    return out


class ServingStats:
    def __init__(self, window: int = 10000):
        self.window = int(window)
        self.started = time.time()
        self._lock = threading.Lock()
        self.requests: collections.Counter = collections.Counter()  # (route, status) -> count
        self.latency: dict[str, collections.deque] = {}
        self.queue_wait: collections.deque = collections.deque(maxlen=self.window)
        self.inference: collections.deque = collections.deque(maxlen=self.window)
        self.rejected: collections.Counter = collections.Counter({reason: 0 for reason in REJECTIONS})

    def record_request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, int(status))] += 1
            self.latency.setdefault(route, collections.deque(maxlen=self.window)).append(seconds)

    def record_job(self, waited: float, run: float) -> None:
        with self._lock:
            self.queue_wait.append(waited)
            self.inference.append(run)

    def record_rejection(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1

    def snapshot(self, pool=None, budget=None) -> dict:
        with self._lock:
            routes: dict = {}
            for (route, status), n in sorted(self.requests.items()):
                entry = routes.setdefault(route, {"count": 0, "by_status": {}})
                entry["count"] += n
                entry["by_status"][str(status)] = n
            for route, values in self.latency.items():
                routes.setdefault(route, {"count": 0, "by_status": {}})["latency_ms"] = _summary(list(values))
            total = sum(self.requests.values())
            errors = sum(n for (_, s), n in self.requests.items() if s >= 400)
            busy = sum(n for (_, s), n in self.requests.items() if s == 503)
            out = {"uptime_s": round(time.time() - self.started, 3), "requests_total": total,
                   "errors_total": errors, "rejected_busy_total": busy, "rejected": dict(self.rejected),
                   "routes": routes, "queue_wait_ms": _summary(list(self.queue_wait)),
                   "inference_ms": _summary(list(self.inference))}
        if pool is not None:
            out["pool"] = {"workers": pool.workers, "queue_size": pool.queue_size, "running": pool.running,
                           "waiting": pool.waiting}
        if budget is not None:
            out["inflight_bytes"] = {"now": budget.in_use, "peak": budget.peak, "limit": budget.limit}
        return out

    def prometheus(self, pool=None, budget=None) -> str:
        snap = self.snapshot(pool, budget)
        lines = ["# HELP ppir_requests_total HTTP requests by route and status.",
                 "# TYPE ppir_requests_total counter"]
        with self._lock:
            items = sorted(self.requests.items())
        for (route, status), n in items:
            lines.append(f'ppir_requests_total{{route="{route}",status="{status}"}} {n}')
        lines += ["# HELP ppir_request_latency_seconds Request latency over the recent window.",
                  "# TYPE ppir_request_latency_seconds summary"]
        for route, entry in snap["routes"].items():
            lat = entry.get("latency_ms", {})
            for q in QUANTILES:
                key = f"p{int(q * 100)}"
                if key in lat:
                    lines.append(f'ppir_request_latency_seconds{{route="{route}",quantile="{q}"}} '
                                 f'{lat[key] / 1000:.6f}')
            lines.append(f'ppir_request_latency_seconds_count{{route="{route}"}} {lat.get("count", 0)}')
        lines += ["# HELP ppir_rejected_total Requests refused with 503, by the limit that refused them.",
                  "# TYPE ppir_rejected_total counter"]
        for reason, n in sorted(snap["rejected"].items()):
            lines.append(f'ppir_rejected_total{{reason="{reason}"}} {n}')
        if pool is not None:
            lines += ["# TYPE ppir_pool_running gauge", f"ppir_pool_running {pool.running}",
                      "# HELP ppir_pool_waiting Requests in the queue, waiting for a predictor.",
                      "# TYPE ppir_pool_waiting gauge", f"ppir_pool_waiting {pool.waiting}"]
        if budget is not None:
            lines += ["# HELP ppir_inflight_body_bytes Bytes of request bodies held (received, parsed or queued).",
                      "# TYPE ppir_inflight_body_bytes gauge", f"ppir_inflight_body_bytes {budget.in_use}"]
        lines.append(f"ppir_uptime_seconds {snap['uptime_s']}")
        return "\n".join(lines) + "\n"
