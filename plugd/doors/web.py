"""The HTTP port: the page's files over plain GET, the API over a WebSocket at `/ws`.

One `websockets` server answers both: `process_request` serves files, and an
upgrade on `/ws` becomes an API session. Pushes go to every client without
waiting; a client whose send buffer grows past a bound is closed (it reconnects
and reloads) rather than buffered without end.
"""

from __future__ import annotations

import gzip
import http
import json
import logging
import mimetypes
import socket
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from plugd.doors.api import Api
from plugd.doors.auth import SESSION_IDLE, Auth
from plugd.service.config import HttpConfig

log = logging.getLogger(__name__)

MAX_FRAME = 64 * 1024
#: A client that has this much unsent is too slow for live values.
MAX_BACKLOG = 256 * 1024
WS_PATH = "/ws"


COOKIE = "plugd_session"
NOT_FOUND = (http.HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")


def _response(status: http.HTTPStatus, body: bytes, content_type: str,
              extra: list[tuple[str, str]] = ()) -> Response:  # type: ignore[assignment]
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"),
                       *extra])
    return Response(status.value, status.phrase, headers, body)


def session_cookie(request: Request) -> str | None:
    """The session a request's cookie names, or None."""
    for header in request.headers.get_all("Cookie"):
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and value:
                return value
    return None


class WebServer:
    """The page, its files and the WebSocket API on one port; pushes go to every page."""
    def __init__(self, www: Path, make_api: Callable[[str, str | None], Api], auth: Auth,
                 http_config: Callable[[], HttpConfig],
                 session_ended: Callable[[], None] = lambda: None) -> None:
        self.www = www.resolve()
        self.make_api = make_api
        self.auth = auth
        self.http_config = http_config
        #: Told when a request ended a session (the cookie's logout): keeps and closes.
        self.session_ended = session_ended
        self.clients: dict[ServerConnection, Api] = {}
        self.server: Server | None = None
        self._gzipped: dict[Path, tuple[float, bytes]] = {}

    async def start(self, host: str | None, port: int, sock: socket.socket | None = None) -> None:
        """Listen on `host`:`port`, or on the socket systemd passed."""
        options: dict[str, Any] = {"process_request": self._process_request, "max_size": MAX_FRAME,
                                   "ping_interval": 20, "ping_timeout": 20, "close_timeout": 1,
                                   "server_header": None}
        if sock is not None:
            self.server = await serve(self._session, sock=sock, **options)
        else:
            self.server = await serve(self._session, host or None, port, **options)

    @property
    def port(self) -> int:
        """The port it listens on (the one the kernel chose for port 0)."""
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Close every connection and stop listening."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        if path == WS_PATH:
            refusal = self._origin_refusal(request)
            if refusal:
                log.warning("WebSocket from %s refused: %s", conn.remote_address, refusal)
                return _response(http.HTTPStatus.FORBIDDEN, refusal.encode() + b"\n",
                                 "text/plain; charset=utf-8")
            return None  # the WebSocket handshake goes on
        if path == "/session":
            return self._cookie(urllib.parse.parse_qs(query), session_cookie(request))
        return self._file(path, request.headers.get("Accept-Encoding", ""))

    def _origin_refusal(self, request: Request) -> str | None:
        """Why a page of another site may not open the WebSocket (None: it may).

        Browsers send Origin on every WebSocket handshake and a page cannot forge
        it; a script or plugctl sends none and logs in itself.
        """
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        host = request.headers.get("Host", "")
        if urllib.parse.urlsplit(origin).netloc.lower() == host.lower():
            return None
        if origin.rstrip("/") in self.http_config().trusted_origins:
            return None
        return f"origin {origin} is not this plug ({host}) nor in http.trusted_origins"

    def _cookie(self, query: dict[str, list[str]], cookie: str | None) -> Response:
        """Trade a login's one-time ticket for the session cookie, or end it on logout."""
        if "logout" in query:
            if cookie is not None and self.auth.session_valid(cookie, time.time()):
                self.auth.end_session(cookie)  # the session itself ends, not only the cookie
                self.session_ended()
            return _response(http.HTTPStatus.NO_CONTENT, b"", "text/plain", [
                ("Set-Cookie", f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")])
        session = self.auth.redeem(query.get("ticket", [""])[0], time.monotonic())
        if session is None:
            return _response(http.HTTPStatus.FORBIDDEN, b"no such ticket (it is used once and "
                             b"lasts a minute): log in again\n", "text/plain; charset=utf-8")
        return _response(http.HTTPStatus.NO_CONTENT, b"", "text/plain", [
            ("Set-Cookie", f"{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; "
                           f"Max-Age={SESSION_IDLE}")])

    def _file(self, path: str, accept_encoding: str) -> Response:
        relative = urllib.parse.unquote(path).lstrip("/") or "index.html"
        target = (self.www / relative).resolve()
        if not target.is_relative_to(self.www) or not target.is_file():
            return _response(*NOT_FOUND)
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
            kind += "; charset=utf-8"
        try:
            if "gzip" in accept_encoding and kind.startswith(COMPRESSIBLE):
                return _response(http.HTTPStatus.OK, self._compressed(target), kind,
                                 [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")])
            return _response(http.HTTPStatus.OK, target.read_bytes(), kind)
        except OSError:
            return _response(*NOT_FOUND)

    def _compressed(self, target: Path) -> bytes:
        """The file gzipped once per version (the page's files change only on upgrade)."""
        mtime = target.stat().st_mtime
        cached = self._gzipped.get(target)
        if cached is None or cached[0] != mtime:
            cached = self._gzipped[target] = (mtime, gzip.compress(target.read_bytes(), 9, mtime=0))
        return cached[1]

    async def _session(self, conn: ServerConnection) -> None:
        address = conn.remote_address[0] if conn.remote_address else "?"
        session = session_cookie(conn.request) if conn.request else None
        if session is not None and not self.auth.session_valid(session, time.time()):
            session = None
        api = self.make_api(address, session)
        self.clients[conn] = api
        try:
            async for frame in conn:
                answer = await api.handle(frame)
                await conn.send(json.dumps(answer))
        except ConnectionClosed:
            pass
        finally:
            self.clients.pop(conn, None)

    def close_ended_sessions(self) -> int:
        """Close every connection whose session has ended (logout elsewhere, a password
        change, expiry): the page reconnects without it. Returns how many were closed."""
        wall = time.time()
        ended = [conn for conn, api in self.clients.items()
                 if api.session is not None and not self.auth.session_valid(api.session, wall)]
        for conn in ended:
            self.clients.pop(conn, None)
            if conn.transport is not None:
                conn.transport.abort()
        return len(ended)

    def push(self, message: dict[str, Any]) -> None:
        """Send to every client now; close the ones that cannot keep up."""
        if not self.clients:
            return
        live = []
        for conn, api in self.clients.items():
            if not api.may_read:
                continue
            transport = conn.transport
            if transport is not None and transport.get_write_buffer_size() > MAX_BACKLOG:
                log.warning("closing a WebSocket client that is %d bytes behind",
                            transport.get_write_buffer_size())
                transport.abort()
            else:
                live.append(conn)
        broadcast(live, json.dumps(message))
