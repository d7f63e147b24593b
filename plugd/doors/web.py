"""The HTTP port: the page's files, the session cookie, and the API over a WebSocket at `/ws`.

uvicorn serves HTTP/1.1 and the WebSocket protocol (`websockets`' own
implementation under it); Starlette routes, serves the files (`pagefiles`: a
revisit asks for the page alone), answers 405 with `Allow` and HEAD
without a body, and compresses. plugd adds what it alone knows: the names it
answers to and the pages it trusts (`hosts`), the connection caps and
deadlines (`guard`), the security headers, and, per WebSocket client, a command
rate and a bound on what it may have waiting to be sent.

Pushes are encoded and framed once, and the same bytes are written to every
page's transport at once: no task, queue or await per page on the way (a
server's frames are unmasked, so every page's copy is the same). Answers are
written the same way, so each page gets its frames in order. A client that
does not read, and so has more than MAX_BACKLOG bytes waiting in its
transport, is cut (its page reconnects and reloads) rather than buffered
without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import email.utils
import json
import logging
import resource
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.frames import Frame, Opcode

from plugd.doors.api import Api
from plugd.doors.auth import SESSION_IDLE, Auth
from plugd.doors.guard import LOST, TRANSPORT, Guard, GuardedHttp, GuardedWebSocket
from plugd.doors.hosts import Names, path_problem
from plugd.doors.limits import ConnectionCounter, TokenBucket, client_key
from plugd.doors.pagefiles import page_routes
from plugd.service.config import HttpConfig

log = logging.getLogger(__name__)

#: The largest WebSocket frame a client may send (an imported configuration fits).
MAX_FRAME = 64 * 1024
#: Frames read ahead of the API per client; past it, reading pauses (and the rest waits in the
#: kernel's buffers, not in the daemon's memory).
MAX_READ_AHEAD = 1
#: A client with this many bytes waiting to be sent is too slow for live values.
MAX_BACKLOG = 256 * 1024
#: Commands per second one WebSocket client may send on average, and at once; and the same
#: for every client of one address (or IPv6 /64) together. Past them, its commands wait.
CLIENT_RATE, CLIENT_BURST = 50.0, 100.0
ADDRESS_RATE, ADDRESS_BURST = 100.0, 200.0
#: File descriptors kept from connections: state files, the journal, the mesh, mDNS, the meter.
DESCRIPTORS_KEPT = 64
WS_PATH = "/ws"
COOKIE = "plugd_session"
#: Sent with every answer: only this plug's own scripts, styles and WebSocket; no framing.
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "
     b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
#: A script, style sheet or image is no document: framing and CSP do not apply to it, and the
#: page's first load asks for two dozen of them.
SUBRESOURCE_HEADERS = [h for h in SECURITY_HEADERS if h[0] in (
    b"x-content-type-options", b"cross-origin-resource-policy")]
SUBRESOURCES = (b"text/css", b"text/javascript", b"application/javascript", b"image/")


def text_frame(text: str) -> bytes:
    """`text` as one whole, unmasked text frame: built once, written to every page as it is."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class Peer:
    """One WebSocket client: its conversation, its command rate, and its transport, to which
    its frames are written whole and in order."""

    def __init__(self, api: Api, address: str, websocket: WebSocket, now: float,
                 gone: Callable[[Peer], None]) -> None:
        self.api = api
        self.address = address
        self.transport: asyncio.Transport = websocket.scope["extensions"][TRANSPORT]
        self.bucket = TokenBucket(CLIENT_RATE, CLIENT_BURST, now)
        #: Set when the connection is cut or lost: its reader stops waiting for its turn.
        self.ended: asyncio.Event = websocket.scope["extensions"].get(LOST) or asyncio.Event()
        self._gone = gone
        self.cut_reason: str | None = None

    def backlog(self) -> int:
        """Bytes waiting in the transport for the socket to take them."""
        return self.transport.get_write_buffer_size()

    def send(self, text: str) -> None:
        """Send `text` as a frame of its own (an answer)."""
        self.write(text_frame(text))

    def write(self, frames: bytes) -> None:
        """Write whole frames now, behind what is waiting; a client that has too much
        waiting already is cut instead."""
        if self.cut_reason is not None or self.transport.is_closing():
            return
        if self.backlog() + len(frames) > MAX_BACKLOG:
            self.cut(f"{self.backlog()} bytes behind")
            return
        self.transport.write(frames)

    def cut(self, reason: str) -> None:
        """End the connection at once: its page reconnects (and logs in again if need be)."""
        if self.cut_reason is None:
            self.cut_reason = reason
            log.info("WebSocket client %s cut: %s", self.address, reason)
            self._gone(self)
            self.ended.set()
        self.transport.abort()


class Gate:
    """Before any route: a sane path, a Host that is this plug; after: the security headers."""

    def __init__(self, app: ASGIApp, names: Callable[[], Names]) -> None:
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a bad path (400) or a foreign host (421); add the headers to what passes."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        problem = path_problem(raw + b"?" + scope.get("query_string", b""))
        status = 400
        if problem is None:
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
            problem, status = self.names().host_problem(host), 421
        if problem is not None:
            log.debug("request refused (%d): %s", status, problem)
            response = PlainTextResponse(problem + "\n", status, headers={"Connection": "close"})
            if scope["type"] == "websocket":
                await WebSocket(scope, receive, send).send_denial_response(response)
            else:
                await response(scope, receive, self._headed(send))
            return
        await self.app(scope, receive, self._headed(send) if scope["type"] == "http" else send)

    @staticmethod
    def _headed(send: Send) -> Send:
        async def send_headed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                kind = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                guard = SUBRESOURCE_HEADERS if kind.startswith(SUBRESOURCES) else SECURITY_HEADERS
                headers += [h for h in guard if h[0] not in names]
                if b"cache-control" not in names:  # revalidate (ETag) rather than guess
                    headers.append((b"cache-control", b"no-cache"))
                message = {**message, "headers": headers}
            await send(message)
        return send_headed


def listen(host: str | None, port: int) -> list[socket.socket]:
    """Listening sockets for `host` (every address when empty) on `port`, opened before the
    server so a port plugd cannot have stops it first; with port 0, the port the kernel chose
    for the first is taken for the others. OSError keeps the errno and names the cause."""
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sock.bind(address)
            except OSError as err:
                if family == socket.AF_INET6 and not host:  # no IPv6 here: IPv4 serves
                    sockets.pop().close()
                    continue
                raise OSError(err.errno, f"cannot listen on {address[0]} port {address[1]}: "
                                         f"{err.strerror}") from None
            sock.listen(128)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise OSError(f"no address to listen on for {host!r}")
    return sockets


def is_local_address(address: str) -> bool:
    """Whether `address` is one of this machine's: binding to it succeeds only if it is."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


class WebServer:
    """The page, its files, the WebSocket API and the `routes` given (the HTTP API) on one
    port; pushes go to every page."""

    def __init__(self, www: Path, make_api: Callable[[str, str | None], Api], auth: Auth,
                 http_config: Callable[[], HttpConfig], names: Callable[[], Names],
                 session_ended: Callable[[], None] = lambda: None,
                 routes: Sequence[BaseRoute] = ()) -> None:
        self.www = www.resolve()
        self.make_api = make_api
        self.auth = auth
        self.http_config = http_config
        self.names = names
        #: Told when a request ended a session (the cookie's logout): keeps and closes.
        self.session_ended = session_ended
        self.clients: dict[Peer, Api] = {}
        self._buckets: dict[str, tuple[TokenBucket, int]] = {}
        self.guard: Guard | None = None
        self.server: uvicorn.Server | None = None
        self._sockets: list[socket.socket] = []
        self._closed_at_trim = 0
        #: Frames pushed in this turn of the event loop, written to every page at its end.
        self._pending: list[bytes] = []
        self.app = Gate(Starlette(routes=[
            WebSocketRoute(WS_PATH, self._websocket),
            Route("/session", self._session_cookie, methods=["GET"]),
            *routes,
            *page_routes(self.www),
        ], middleware=[Middleware(GZipMiddleware, minimum_size=512, compresslevel=6)]),
            self.names)

    async def start(self, sockets: list[socket.socket]) -> None:
        """Serve on `sockets`: those `listen` opened, or the one systemd passed."""
        http = self.http_config()
        total = http.max_connections
        limit = _descriptor_limit(total + DESCRIPTORS_KEPT)
        if limit is not None and total > limit - DESCRIPTORS_KEPT:
            log.warning("only %d file descriptors: at most %d connections (http.max_connections "
                        "is %d); raise LimitNOFILE", limit, max(8, limit - DESCRIPTORS_KEPT), total)
            total = max(8, limit - DESCRIPTORS_KEPT)
        self.guard = Guard(ConnectionCounter(total, http.max_connections_per_client))
        config = uvicorn.Config(
            self.app, http=GuardedHttp, ws=GuardedWebSocket, lifespan="off", log_config=None,
            access_log=False, server_header=False, date_header=False, proxy_headers=False,
            timeout_keep_alive=5, timeout_graceful_shutdown=1, h11_max_incomplete_event_size=16384,
            ws_max_size=MAX_FRAME, ws_max_queue=MAX_READ_AHEAD, ws_ping_interval=20,
            ws_ping_timeout=20, ws_per_message_deflate=False)
        config.plugd_guard = self.guard  # type: ignore[attr-defined]
        config.load()
        self._sockets = sockets
        self.server = uvicorn.Server(config)
        self.server.lifespan = config.lifespan_class(config)
        self.tick(time.time())
        await self.server.startup(sockets=self._sockets)

    @property
    def port(self) -> int:
        """The port it listens on (the one the kernel chose for port 0)."""
        return int(self._sockets[0].getsockname()[1])

    def tick(self, wall: float) -> None:
        """Once a second: the Date every answer carries; and, once connections have come and
        gone, the memory they held given back to the system."""
        if self.server is not None:
            self.server.server_state.default_headers = [
                (b"date", email.utils.formatdate(wall, usegmt=True).encode())]
        closed = self.guard.closed if self.guard is not None else 0
        if closed != self._closed_at_trim and (not self.clients or closed - self._closed_at_trim > 100):
            self._closed_at_trim = closed
            give_back_memory()

    async def close(self) -> None:
        """Close every connection and stop listening."""
        if self.server is not None and self.server.started:
            for peer in list(self.clients):
                peer.cut("the plug stops")
            await self.server.shutdown(sockets=self._sockets)

    def counters(self) -> dict[str, int]:
        """For request_status: connections open, refused when full, cut for slowness."""
        guard = self.guard
        return {"connections": len(guard.counter) if guard else 0,
                "connectionsRefused": guard.refused if guard else 0,
                "connectionsTimedOut": guard.timed_out if guard else 0}

    async def _session_cookie(self, request: Request) -> Response:
        """Trade a login's one-time ticket for the session cookie, or end it on logout."""
        secure = "; Secure" if request.url.scheme == "https" else ""
        cookie = request.cookies.get(COOKIE) or None
        if "logout" in request.query_params:
            if cookie is not None and self.auth.session_valid(cookie, time.time()):
                self.auth.end_session(cookie)  # the session itself ends, not only the cookie
                self.session_ended()
            return Response(status_code=204, headers={
                "Set-Cookie": f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"})
        session = self.auth.redeem(request.query_params.get("ticket", ""), time.monotonic())
        if session is None:
            return PlainTextResponse("no such ticket (it is used once and lasts a minute): "
                                     "log in again\n", 403)
        return Response(status_code=204, headers={
            "Set-Cookie": f"{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; "
                          f"Max-Age={SESSION_IDLE}{secure}"})

    def _origin_refusal(self, websocket: WebSocket) -> str | None:
        origin = websocket.headers.get("origin")
        if origin is None:
            return None
        scheme = "https" if websocket.url.scheme == "wss" else "http"
        server = websocket.scope.get("server")
        port = server[1] if server else None
        names = self.names()
        return names.origin_problem(origin, scheme, port)

    async def _websocket(self, websocket: WebSocket) -> None:
        address = websocket.client.host if websocket.client else "?"
        refusal = self._origin_refusal(websocket)
        if refusal:
            log.warning("WebSocket from %s refused: %s", address, refusal)
            await websocket.send_denial_response(PlainTextResponse(refusal + "\n", 403))
            return
        session = websocket.cookies.get(COOKIE) or None
        if session is not None and not self.auth.session_valid(session, time.time()):
            session = None
        await websocket.accept()
        api = self.make_api(address, session)
        peer = Peer(api, address, websocket, time.monotonic(),
                    lambda gone: self.clients.pop(gone, None))
        bucket = self._take_bucket(address)
        self.clients[peer] = api
        try:
            while True:
                frame = await websocket.receive()
                if frame["type"] == "websocket.disconnect":
                    break
                text = frame.get("text")
                if text is None:
                    text = frame.get("bytes") or b""
                now = time.monotonic()
                wait = max(peer.bucket.take(now), bucket.take(now))
                if wait > 0:  # this client alone waits its turn; the others go on
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(peer.ended.wait(), wait)
                if peer.ended.is_set():
                    break
                answer = json.dumps(await api.handle(text))
                self.flush()  # what the command pushed was made before its answer
                peer.send(answer)
        except (WebSocketDisconnect, OSError):
            pass
        finally:
            self.clients.pop(peer, None)
            self._drop_bucket(address)

    def _take_bucket(self, address: str) -> TokenBucket:
        key = client_key(address)
        bucket, users = self._buckets.get(key) or (TokenBucket(ADDRESS_RATE, ADDRESS_BURST,
                                                               time.monotonic()), 0)
        self._buckets[key] = (bucket, users + 1)
        return bucket

    def _drop_bucket(self, address: str) -> None:
        key = client_key(address)
        bucket, users = self._buckets[key]
        if users > 1:
            self._buckets[key] = (bucket, users - 1)
        else:
            del self._buckets[key]

    def close_ended_sessions(self) -> int:
        """Cut every connection whose session has ended (logout elsewhere, a password
        change, expiry): the page reconnects without it. Returns how many were cut."""
        wall = time.time()
        ended = [peer for peer, api in self.clients.items()
                 if api.session is not None and not self.auth.session_valid(api.session, wall)]
        for peer in ended:
            peer.cut("its session ended")
        return len(ended)

    def push(self, *messages: dict[str, Any]) -> None:
        """Send `messages` to every page that may read, encoded and framed once. Everything
        pushed in one turn of the event loop (a switch's thing_update and its event, a round of
        things) goes out together in one write per page, at the end of the turn."""
        if not self.clients:
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending += [text_frame(json.dumps(message)) for message in messages]

    def flush(self) -> None:
        """Write what was pushed to every page that may read; a page too far behind is cut."""
        if not self._pending:
            return
        frames = b"".join(self._pending)
        self._pending.clear()
        for peer, api in list(self.clients.items()):
            if api.may_read:
                peer.write(frames)


def give_back_memory() -> None:
    """Return the C library's free heap memory to the system. A burst of clients leaves
    freed buffers that glibc keeps for reuse; on a small board they are better given back.
    Nothing on other C libraries."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


def _descriptor_limit(wanted: int) -> int | None:
    """The open-file limit, first raised towards `wanted` as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return None if soft == resource.RLIM_INFINITY else soft

