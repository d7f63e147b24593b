"""The HTTP port: the page's files over plain GET, the API over a WebSocket at `/ws`.

One `websockets` server answers both: `process_request` serves files, and an
upgrade on `/ws` becomes an API session. Pushes go to every client without
waiting; a client whose send buffer grows past a bound is closed (it reconnects
and reloads) rather than buffered without end.
"""

from __future__ import annotations

import http
import json
import logging
import mimetypes
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from plugd.api import Api

log = logging.getLogger(__name__)

MAX_FRAME = 64 * 1024
#: A client that has this much unsent is too slow for live values.
MAX_BACKLOG = 256 * 1024
WS_PATH = "/ws"


def _response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff")])
    return Response(status.value, status.phrase, headers, body)


class WebServer:
    def __init__(self, www: Path, make_api: Callable[[str], Api]) -> None:
        self.www = www.resolve()
        self.make_api = make_api
        self.clients: set[ServerConnection] = set()
        self.server: Server | None = None

    async def start(self, host: str | None, port: int, sock: socket.socket | None = None) -> None:
        options: dict[str, Any] = {"process_request": self._process_request, "max_size": MAX_FRAME,
                                   "ping_interval": 20, "ping_timeout": 20, "close_timeout": 1,
                                   "server_header": None}
        if sock is not None:
            self.server = await serve(self._session, sock=sock, **options)
        else:
            self.server = await serve(self._session, host or None, port, **options)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == WS_PATH:
            return None  # the WebSocket handshake goes on
        return self._file(path)

    def _file(self, path: str) -> Response:
        relative = path.lstrip("/") or "index.html"
        target = (self.www / relative).resolve()
        if not target.is_relative_to(self.www) or not target.is_file():
            return _response(http.HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
            kind += "; charset=utf-8"
        try:
            body = target.read_bytes()
        except OSError:
            return _response(http.HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
        return _response(http.HTTPStatus.OK, body, kind)

    async def _session(self, conn: ServerConnection) -> None:
        address = conn.remote_address[0] if conn.remote_address else "?"
        api = self.make_api(address)
        self.clients.add(conn)
        try:
            async for frame in conn:
                answer = await api.handle(frame)
                await conn.send(json.dumps(answer))
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(conn)

    def push(self, message: dict[str, Any]) -> None:
        """Send to every client now; close the ones that cannot keep up."""
        if not self.clients:
            return
        live = []
        for conn in self.clients:
            transport = conn.transport
            if transport is not None and transport.get_write_buffer_size() > MAX_BACKLOG:
                log.warning("closing a WebSocket client that is %d bytes behind",
                            transport.get_write_buffer_size())
                transport.abort()
            else:
                live.append(conn)
        broadcast(live, json.dumps(message))
