"""How many bytes of request bodies the server holds at once, across all requests.

The per-request body limit alone lets N concurrent clients make the server hold N x that limit (14 bodies of
130 MB took a server to 6.4 GB). Every request therefore reserves its bytes here before its body is read: the
Content-Length up front (a body without one reserves as it arrives), shrunk to the decoded image's size once the
JSON is parsed, and held until the answer is ready. A request that does not fit is refused at once with 503 +
Retry-After (``ServerBusy``, reason ``body_budget``) without its body being read.

Large bodies (above 1/16 of the budget) may only fill 3/4 of it together: a few huge uploads cannot starve the
ordinary-sized requests that keep arriving meanwhile.
"""
from __future__ import annotations

import threading

from .protocol import ServerBusy

MB = 1 << 20


class ByteBudget:
    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"the byte budget must be positive, got {limit}")
        self.limit = int(limit)
        self.large = self.limit // 16  # bodies above this are "large"...
        self.large_share = self.limit * 3 // 4  # ...and may only use this much of the budget
        self._lock = threading.Lock()
        self.in_use = 0
        self.peak = 0

    def reserve(self, nbytes: int = 0) -> "Reservation":
        reservation = Reservation(self)
        reservation.ensure(nbytes)
        return reservation

    def _change(self, old: int, new: int) -> None:
        """Move one reservation from `old` to `new` bytes; ServerBusy when growing it does not fit."""
        with self._lock:
            total = self.in_use - old + new
            if new > old and total > (self.large_share if new > self.large else self.limit):
                raise ServerBusy(f"the server is busy receiving other requests ({self.in_use / MB:.0f} MB of bodies "
                                 f"in flight; {new / MB:.1f} MB more would exceed its --max-inflight-mb of "
                                 f"{self.limit / MB:g} MB)", 2.0, "body_budget")
            self.in_use = total
            self.peak = max(self.peak, total)


class Reservation:
    """One request's share of the budget: grown while its body arrives, resized, released once (idempotent)."""

    def __init__(self, budget: ByteBudget):
        self.budget, self.nbytes, self.peak = budget, 0, 0

    def ensure(self, nbytes: int) -> None:
        """Hold at least `nbytes` (ServerBusy when that does not fit)."""
        if nbytes > self.nbytes:
            self.budget._change(self.nbytes, nbytes)
            self.nbytes = self.peak = nbytes

    def resize(self, nbytes: int) -> None:
        """Hold exactly `nbytes` (shrinking always fits)."""
        if nbytes != self.nbytes:
            self.budget._change(self.nbytes, nbytes)
            self.nbytes = nbytes

    def release(self) -> None:
        self.resize(0)
