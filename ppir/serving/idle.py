"""Connections that send no request: closed after a few seconds, and not counted against --max-connections.

uvicorn closes a connection that stays idle *after* a response (keep-alive timeout), but not one that never
sends a complete request head: a few hundred such sockets stayed open for ever and, counted by its
`limit_concurrency`, made every /health answer 503. `with_head_timeout(protocol)` wraps uvicorn's HTTP protocol
class (httptools or h11) so that

* a connection counts towards --max-connections from its first byte, not from its accept (an idle socket costs
  a file descriptor and a few KB, not a slot that real requests need), and
* a connection whose first request head is not complete `timeout` seconds after the accept is closed (also a
  slow-loris client trickling header bytes).
"""
from __future__ import annotations

DEFAULT_HEAD_TIMEOUT = 5.0


def with_head_timeout(protocol_class: type, timeout: float = DEFAULT_HEAD_TIMEOUT) -> type:
    """A subclass of uvicorn's `protocol_class` with the rules above."""

    class HeadTimeoutProtocol(protocol_class):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.connections.discard(self)  # counted from its first byte (data_received)
            self._counted = False
            self._head_timer = self.loop.call_later(timeout, self._head_timeout) if timeout > 0 else None

        def data_received(self, data: bytes) -> None:
            if not self._counted:
                self._counted = True
                self.connections.add(self)
            super().data_received(data)

        def connection_lost(self, exc) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.cycle is None and not self.transport.is_closing():  # no request head yet
                self.transport.close()

    HeadTimeoutProtocol.__name__ = HeadTimeoutProtocol.__qualname__ = f"HeadTimeout{protocol_class.__name__}"
    return HeadTimeoutProtocol


def protocol_class(parser: str) -> type:
    """uvicorn's protocol class for `parser` ("httptools" or "h11")."""
    if parser == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return H11Protocol
