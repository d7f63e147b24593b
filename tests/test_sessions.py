"""A session's end is felt everywhere at once: logout, a password change, the cookie's
logout and expiry close the connections holding that session, and take its rights."""

import asyncio
import json
import urllib.request

from conftest import Client
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from plugd.doors import auth as auth_module


async def logged_in(d, password=None):
    """A page's connection: logged in with the password, and its session as the cookie."""
    ws = await connect(f"ws://127.0.0.1:{d.web.port}/ws")
    client = Client(ws)
    password = password or (d.plug.state.path / "initial-password").read_text().strip()
    login = await client.ask({"command": "login", "password": password})
    assert login["success"], login
    session = await asyncio.to_thread(_cookie, d, login["ticket"])
    page = await connect(f"ws://127.0.0.1:{d.web.port}/ws", additional_headers={"Cookie": session})
    return client, Client(page), session


def _cookie(d, ticket):
    with urllib.request.urlopen(f"http://127.0.0.1:{d.web.port}/session?ticket={ticket}") as answer:
        return answer.headers["Set-Cookie"].split(";")[0]


async def closed(client: Client) -> bool:
    """Whether the daemon closes the connection (pushes that come first are skipped)."""
    async def drain() -> None:
        while True:
            await client.ws.recv()
    try:
        await asyncio.wait_for(drain(), 10)
    except ConnectionClosed:
        return True
    except TimeoutError:
        return False
    return False


async def test_logout_closes_every_connection_of_that_session(make_daemon):
    d = await make_daemon()
    client, page, _ = await logged_in(d)
    assert (await page.ask({"command": "switch", "state": "on"}))["relay"] is True
    assert (await client.ask({"command": "logout"}))["success"]
    assert await closed(page)
    # a new connection with the old cookie is a reader only
    async with connect(f"ws://127.0.0.1:{d.web.port}/ws") as ws:
        refused = await Client(ws).ask({"command": "switch", "state": "off"})
        assert refused["command"] == "error" and refused["login"] is True


async def test_a_password_change_ends_every_other_session_at_once(make_daemon):
    d = await make_daemon()
    changer, _, _ = await logged_in(d)
    _, other, _ = await logged_in(d)
    old = (d.plug.state.path / "initial-password").read_text().strip()
    changed = await changer.ask({"command": "change_password", "old": old,
                                 "new": "a kettle and a heater"})
    assert changed["success"]
    assert await closed(other)
    assert (await changer.ask({"command": "switch", "state": "on"}))["relay"] is True


async def test_the_cookies_logout_ends_the_session_not_only_the_cookie(make_daemon):
    d = await make_daemon()
    _, page, session = await logged_in(d)
    request = urllib.request.Request(f"http://127.0.0.1:{d.web.port}/session?logout=1",
                                     headers={"Cookie": session})
    await asyncio.to_thread(lambda: urllib.request.urlopen(request).close())
    assert await closed(page)
    async with connect(f"ws://127.0.0.1:{d.web.port}/ws", additional_headers={"Cookie": session}) as ws:
        assert not (await Client(ws).ask({"command": "request_session"}))["authenticated"]
    await d.plug.writer.flush()
    assert json.loads((d.plug.state.path / "auth.json").read_text())["sessions"] == {}


async def test_an_expired_session_loses_its_rights_and_its_connection(make_daemon, monkeypatch):
    d = await make_daemon()
    _, page, _ = await logged_in(d)
    monkeypatch.setattr(auth_module, "SESSION_IDLE", 0.0)  # every session is past its life now
    refused = await page.ask({"command": "switch", "state": "on"})
    assert refused["command"] == "error" and refused["login"] is True  # rights gone at once
    assert await closed(page)  # and the tick closes the connection
