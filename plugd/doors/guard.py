"""The HTTP server's connections, counted and timed: uvicorn's protocols with plugd's caps.

uvicorn brings HTTP/1.1 (h11), keep-alive timeouts, the WebSocket protocol
(`websockets`' sans-I/O implementation) and its pings. What it leaves to the
application is added here, where connections are made: a cap on connections in
total and per client (an address, an IPv6 /64), refused at once with a 503
before any byte is read, and a deadline for a request's head, so a client that
opens connections and sends nothing, or a byte a minute, cannot hold slots.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from plugd.doors.limits import ConnectionCounter

log = logging.getLogger(__name__)

#: Seconds a client has to send a request's head, on a new connection and between requests.
HEAD_TIMEOUT = 10.0
#: The scope extension under which a WebSocket's transport is found (to cut it at once).
TRANSPORT = "plugd.transport"
#: The scope extension holding an asyncio.Event set when the WebSocket's connection is lost,
#: so that a handler waiting its turn stops at once rather than after its turn.
LOST = "plugd.lost"
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 36\r\nConnection: close\r\nRetry-After: 10\r\n\r\n"
        b"too many connections: try it again\r\n")


class Guard:
    """The counter and the log of refusals, shared by every connection of one server."""

    def __init__(self, counter: ConnectionCounter) -> None:
        self.counter = counter
        self.refused = 0
        self.timed_out = 0
        #: Admitted connections closed since start.
        self.closed = 0
        #: Open transports and the address each is counted against.
        self._addresses: dict[asyncio.BaseTransport, str] = {}

    def admit(self, transport: asyncio.Transport) -> bool:
        """Count a new connection, or answer it 503 and close it."""
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "?"
        refusal = self.counter.admit(address)
        if refusal is not None:
            self.refused += 1
            if self.refused in (1, 10, 100) or self.refused % 1000 == 0:
                log.warning("connection from %s refused: %s (%d refused so far)",
                            address, refusal, self.refused)
            transport.write(BUSY)
            transport.close()
            return False
        self._addresses[transport] = address
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        """A connection closed (said by whichever protocol held it last)."""
        address = self._addresses.pop(transport, None)
        if address is not None:
            self.counter.release(address)
            self.closed += 1


class GuardedHttp(H11Protocol):
    """uvicorn's HTTP/1.1 with the caps and the head deadline. The server's configuration
    carries the guard (`config.plugd_guard`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard: Guard = self.config.plugd_guard  # type: ignore[attr-defined]
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_after: object = None
        self._admitted = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Admit or refuse before anything else; then wait at most HEAD_TIMEOUT for a head."""
        if not self.guard.admit(transport):
            self.transport = transport
            return
        self._admitted = True
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Release the slot (unless the connection became a WebSocket, which releases it)."""
        self._disarm()
        if not self._admitted:
            return
        self.guard.release(self.transport)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Read; once a new request's head is in, its deadline is met."""
        if not self._admitted:
            return
        super().data_received(data)
        if self.cycle is not self._waiting_after:
            self._disarm()

    def on_response_complete(self) -> None:
        """After an answer, the next request's head has its own deadline."""
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def handle_websocket_upgrade(self, event: Any) -> None:
        """The connection becomes a WebSocket, which keeps the slot until it closes."""
        self._disarm()
        self._admitted = False
        super().handle_websocket_upgrade(event)

    def _arm(self) -> None:
        self._disarm()
        self._waiting_after = self.cycle
        self._deadline = self.loop.call_later(HEAD_TIMEOUT, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self.guard.timed_out += 1
        self.transport.abort()


class GuardedWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket on `websockets`, releasing its slot at close and handing the
    application its transport, so that a session's end or a client that does not read
    can be cut at once."""

    def handle_connect(self, event: Any) -> None:
        """The handshake's request: the application starts with the transport in its scope."""
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][TRANSPORT] = self.transport
            scope["extensions"][LOST] = self.lost = asyncio.Event()

    async def send(self, message: Any) -> None:
        """Send as uvicorn does; a refusal's answer (an HTTP response instead of the
        handshake) is a finished handshake too, not an application error."""
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True

    def connection_lost(self, exc: Exception | None) -> None:
        """Release the slot taken when the connection was made."""
        self.config.plugd_guard.release(self.transport)  # type: ignore[attr-defined]
        lost: asyncio.Event | None = getattr(self, "lost", None)
        if lost is not None:
            lost.set()
        super().connection_lost(exc)
