"""The HTTP door against a hostile LAN and hostile pages, over real connections to a daemon:
methods, HEAD, validators, bad paths, security headers, host names (DNS rebinding), origins,
connection caps, the head deadline, a command flood and a client that does not read."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import resource
import shutil
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import Client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from plugd.doors import guard, web
from plugd.doors.pagefiles import Build
from plugd.service.daemon import Daemon
from tests.support import until

pytestmark = pytest.mark.usefixtures("enough_descriptors")


@pytest.fixture
def enough_descriptors() -> None:
    """A thousand connections need more descriptors than a shell's default 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096 and (hard == resource.RLIM_INFINITY or hard >= 4096):
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))


async def exchange(port: int, request: bytes, source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """Send one raw request; the status, the headers (lower-case names) and the body, read to
    the end (every request here asks the server to close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(request)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def request(method: str, path: str, host: str = "localhost", *extra: str) -> bytes:
    """A request that names `host` and asks for the connection to close after it."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close", *extra, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def url(d: Daemon) -> str:
    return f"ws://127.0.0.1:{d.web.port}/ws"


def assert_guarded(headers: dict[str, str]) -> None:
    policy = headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"


async def test_each_path_takes_only_its_methods_and_says_which(daemon):
    port = daemon.web.port
    for method, path, allowed in [("POST", "/", "GET, HEAD"), ("PUT", "/index.html", "GET, HEAD"),
                                  ("DELETE", "/session", "GET, HEAD"), ("POST", "/session", "GET, HEAD")]:
        status, headers, _ = await exchange(port, request(method, path, "localhost", "Content-Length: 0"))
        assert status == 405, (method, path)
        assert set(headers["allow"].split(", ")) == set(allowed.split(", "))
        assert_guarded(headers)


async def test_head_has_no_body_and_a_revisit_costs_a_304(daemon):
    port = daemon.web.port
    status, got, body = await exchange(port, request("GET", "/index.html"))
    assert status == 200 and body and got["etag"] and got["cache-control"] == "no-cache"
    assert_guarded(got)
    status, headed, body = await exchange(port, request("HEAD", "/index.html"))
    assert status == 200 and body == b"" and headed["content-length"] == got["content-length"]
    status, again, body = await exchange(port, request("GET", "/index.html", "localhost",
                                                       f"If-None-Match: {got['etag']}"))
    assert status == 304 and body == b"" and again["etag"] == got["etag"]


def linked_files(page: bytes) -> list[str]:
    return re.findall(r'(?:src|href)="(v/[0-9a-f]{12}/[^"]+)"', page.decode())


async def test_the_page_links_its_files_by_build_and_they_are_kept_for_a_year(daemon):
    port = daemon.web.port
    _, _, page = await exchange(port, request("GET", "/"))
    links = linked_files(page)
    assert {"js/main.js", "css/theme.css", "vendor/uplot/uPlot.iife.min.js", "favicon.svg"} <= {
        link.split("/", 2)[2] for link in links}
    assert len({link.split("/")[1] for link in links}) == 1  # one build for every file
    for link in links:
        status, headers, body = await exchange(port, request("GET", "/" + link))
        assert status == 200 and body, link
        assert headers["cache-control"] == "public, max-age=31536000, immutable", link
        assert headers["x-content-type-options"] == "nosniff", link
    plain = links[0].split("/", 2)[2]
    status, headers, _ = await exchange(port, request("GET", "/" + plain))
    assert status == 200 and headers["cache-control"] == "no-cache"


async def test_a_file_of_another_build_is_todays_file_revalidated(daemon):
    # A page loaded before an upgrade asks for the old build's files: it gets today's, not kept.
    status, headers, body = await exchange(daemon.web.port, request("GET", "/v/0123456789ab/js/main.js"))
    assert status == 200 and body and headers["cache-control"] == "no-cache"


def test_a_changed_file_changes_the_build_and_every_link(tmp_path):
    shutil.copytree(Path(web.__file__).parents[2] / "www", tmp_path / "www")
    build = Build(tmp_path / "www")
    digest, page = build.page()
    old = linked_files(page)
    assert old and all(link.startswith(f"v/{digest}/") for link in old)
    (tmp_path / "www" / "css" / "theme.css").write_text("body{color:#000}")
    digest2, page2 = build.page()
    assert digest2 != digest and linked_files(page2) == [
        link.replace(digest, digest2) for link in old]
    assert b'href="api/energy.csv' in page2  # a link to something that is not a file stays


async def test_files_are_compressed_for_clients_that_take_gzip(daemon):
    status, headers, body = await exchange(daemon.web.port, request("GET", "/index.html", "localhost",
                                                                    "Accept-Encoding: gzip"))
    assert status == 200 and headers["content-encoding"] == "gzip" and body[:2] == b"\x1f\x8b"


@pytest.mark.parametrize("path", [b"/%00", b"/index.html%00.png", b"/%ff", b"/\xff\xfe", b"/%0d%0a",
                                  b"/" + b"a" * 3000, b"/session?x=" + b"%00"])
async def test_bad_paths_get_400_and_no_traceback(daemon, caplog, path):
    raw = b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    status, _, body = await exchange(daemon.web.port, raw)
    assert status == 400, body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text


async def test_a_name_that_is_not_the_plug_gets_421_for_the_page_and_the_websocket(make_daemon):
    # DNS rebinding: evil.example now resolves to the plug, and the browser sends its name.
    d = await make_daemon(**{"http.allow_unauthenticated_changes": True})
    status, headers, _ = await exchange(d.web.port, request("GET", "/", "evil.example"))
    assert status == 421 and "evil.example" in _.decode()
    assert_guarded(headers)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://evil.example:{d.web.port}/ws", host="127.0.0.1",
                           port=d.web.port, origin=f"http://evil.example:{d.web.port}"):
            pass
    assert refused.value.response.status_code == 421
    assert d.plug.things[1].value == 0.0
    for host in ["localhost", f"127.0.0.1:{d.web.port}", "[::1]", "testplug.local",
                 f"{socket.gethostname()}.local"]:
        assert (await exchange(d.web.port, request("GET", "/", host)))[0] == 200, host


async def test_server_names_are_names_of_the_plug(make_daemon):
    d = await make_daemon(**{"http.server_names": ["plug.home.example"]})
    assert (await exchange(d.web.port, request("GET", "/", "plug.home.example:8080")))[0] == 200
    assert (await exchange(d.web.port, request("GET", "/", "other.home.example")))[0] == 421


async def test_an_origin_must_be_the_plug_by_its_name_scheme_and_port(make_daemon):
    d = await make_daemon(**{"http.trusted_origins": ["http://espplug.local"]})
    port = d.web.port
    for origin in [f"https://localhost:{port}", "http://localhost:1", f"http://evil.example:{port}",
                   "null"]:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url(d), origin=origin):
                pass
        assert refused.value.response.status_code == 403, origin
    for origin in [f"http://localhost:{port}", f"http://127.0.0.1:{port}", "http://espplug.local"]:
        async with connect(url(d), origin=origin) as ws:
            assert (await Client(ws).ask({"command": "request_status"}))["command"] == "response_status"


async def test_cookies_are_httponly_and_same_site_strict(daemon):
    async with connect(url(daemon)) as ws:  # a login, as the page does: its ticket for the cookie
        ticket = (await Client(ws).ask({"command": "login", "token": daemon.auth.cli_token}))["ticket"]
    status, headers, _ = await exchange(daemon.web.port, request("GET", f"/session?ticket={ticket}"))
    assert status == 204
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie


async def hold(port: int, source: str, count: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Open `count` connections from `source` that send nothing."""
    return [await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
            for _ in range(count)]


async def refused_at_once(reader: asyncio.StreamReader) -> bool:
    """Whether a connection was answered 503 and closed without sending a byte."""
    answer = await asyncio.wait_for(reader.read(), 10)
    return answer.startswith(b"HTTP/1.1 503 ")


async def test_an_attacker_with_a_thousand_connections_leaves_the_page_to_others(daemon):
    port, per_client = daemon.web.port, daemon.config.http.max_connections_per_client
    held = await hold(port, "127.0.0.3", 1000)
    try:
        # One client (one address) holds its share; every further connection is refused at once.
        refused = await asyncio.gather(*(refused_at_once(r) for r, _ in held[per_client:]))
        assert all(refused)
        assert daemon.web.counters()["connections"] == per_client
        # Someone else loads the page and switches meanwhile.
        status, _, body = await exchange(port, request("GET", "/"), source="127.0.0.1")
        assert status == 200 and b"<html" in body.lower()
        async with connect(url(daemon)) as ws:
            person = Client(ws)
            assert (await person.ask({"command": "login", "token": daemon.auth.cli_token}))["success"]
            assert (await person.ask({"command": "switch", "state": "on"}))["relay"] is True
    finally:
        for _, writer in held:
            writer.close()
    await until(lambda: daemon.web.counters()["connections"] == 0, "the held connections released")


async def test_the_total_cap_refuses_new_clients_and_keeps_the_open_ones(make_daemon):
    d = await make_daemon(**{"http.max_connections": 8, "http.max_connections_per_client": 2})
    async with connect(url(d)) as ws:  # a page already open
        page = Client(ws)
        held = []
        for i in range(4):
            held += await hold(d.web.port, f"127.0.0.{10 + i}", 2)
        await until(lambda: d.web.counters()["connections"] == 8, "every slot taken")
        late = await hold(d.web.port, "127.0.0.20", 1)
        assert await refused_at_once(late[0][0])
        assert (await page.ask({"command": "request_status"}))["http"]["connectionsRefused"] >= 1
        held[0][1].close()
        await until(lambda: d.web.counters()["connections"] == 7, "a slot given back")
        assert (await exchange(d.web.port, request("GET", "/"), source="127.0.0.20"))[0] == 200
        for _, writer in held:
            writer.close()


async def test_a_client_that_sends_no_request_head_in_time_is_cut(daemon, monkeypatch):
    monkeypatch.setattr(guard, "HEAD_TIMEOUT", 0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.web.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: local")  # and then nothing
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    assert daemon.web.guard.timed_out == 1
    # Between requests on a kept-alive connection, too.
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.web.port)
    writer.write(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\nGET / HTTP/1.1\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"HTTP/1.1 ") == 1
    assert daemon.web.guard.timed_out == 2
    await until(lambda: daemon.web.counters()["connections"] == 0, "the slots released")


async def test_a_command_flood_is_slowed_and_others_keep_their_turn(daemon):
    loop = asyncio.get_running_loop()
    started = loop.time()  # before the flood's connection, whose bucket starts full
    async with connect(url(daemon), max_queue=None, close_timeout=0.1) as flood_ws, \
            connect(url(daemon)) as person_ws:
        answered = 0

        async def count() -> None:
            nonlocal answered
            async for message in flood_ws:
                answered += json.loads(message)["command"] == "response_status"
        counting = asyncio.create_task(count())
        for _ in range(2000):
            await flood_ws.send('{"command":"request_status"}')
        person = Client(person_ws)
        assert (await person.ask({"command": "login", "token": daemon.auth.cli_token}))["success"]
        for state in ["on", "off", "on"]:
            assert (await person.ask({"command": "switch", "state": state}))["relay"] is (state == "on")
        elapsed = loop.time() - started
        # The flood got no more than its burst and its rate for the time it has been going.
        assert answered <= web.CLIENT_BURST + web.CLIENT_RATE * elapsed + 1
        assert answered < 2000
        counting.cancel()


def _frame(payload: bytes) -> bytes:
    """A masked text frame, as a client sends it."""
    mask = os.urandom(4)
    head = bytes([0x81])
    size = len(payload)
    head += bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + struct.pack("!H", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.fixture
async def deaf(daemon: Daemon) -> AsyncIterator[socket.socket]:
    """A WebSocket client that never reads, with a small receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", daemon.web.port))
    key = base64.b64encode(os.urandom(16)).decode()
    await asyncio.get_running_loop().sock_sendall(sock, (
        f"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    yield sock
    sock.close()


async def test_a_client_that_does_not_read_is_cut_and_others_go_on(daemon, deaf, monkeypatch):
    monkeypatch.setattr(web, "MAX_BACKLOG", 32 * 1024)
    await until(lambda: len(daemon.web.clients) == 1, "the deaf client connected")
    peer = next(iter(daemon.web.clients))
    peer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    loop = asyncio.get_running_loop()
    ask = _frame(json.dumps({"command": "request_settings"}).encode())

    async def keep_asking() -> None:
        while True:
            await loop.sock_sendall(deaf, ask)
    asking = asyncio.create_task(keep_asking())
    try:
        await until(lambda: peer.cut_reason is not None, "the deaf client cut", timeout=60)
        assert "bytes behind" in peer.cut_reason and peer not in daemon.web.clients
    finally:
        asking.cancel()
    async with connect(url(daemon)) as ws:
        assert (await Client(ws).ask({"command": "request_status"}))["clients"] == 1
