"""Logins, sessions, cookies, origins: each refusal, over real connections to a daemon."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import urllib.error
import urllib.request
from email.message import Message

import pytest
from conftest import Client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from plugd.errors import StoreError
from plugd.service.daemon import Daemon


def url(d: Daemon, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{d.web.port}{path}"


async def get(d: Daemon, path: str) -> tuple[int, Message]:
    """A plain HTTP GET, off the event loop the daemon runs on; headers looked up without case."""
    return await asyncio.to_thread(_get, d, path)


def _get(d: Daemon, path: str) -> tuple[int, Message]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{d.web.port}{path}", timeout=5) as answer:
            return answer.status, answer.headers
    except urllib.error.HTTPError as err:
        return err.code, err.headers


async def test_first_start_makes_a_random_password_kept_only_as_a_hash(make_daemon):
    d = await make_daemon()
    state = d.plug.state.path
    password = (state / "initial-password").read_text().strip()
    assert len(password) >= 12
    assert stat.S_IMODE(os.stat(state / "initial-password").st_mode) == 0o600
    stored = (state / "auth.json").read_text()
    assert password not in stored and json.loads(stored)["scrypt"]["n"] >= 2**14


async def test_reading_is_open_but_a_change_needs_a_login(make_daemon, factory):
    d = await make_daemon()
    async with connect(url(d)) as ws:
        c = Client(ws)
        assert (await c.ask({"command": "request_things"}))["command"] == "response_things"
        refused = await c.ask({"command": "switch", "state": "on"})
        assert refused["command"] == "error" and refused["login"] is True
        assert "login required" in refused["error"]
        assert factory.pin(17).state is False
        session = await c.ask({"command": "request_session"})
        assert (session["authenticated"], session["readingOpen"], session["initialPassword"]) == (
            False, True, True)


async def test_wrong_passwords_are_refused_then_rate_limited(make_daemon):
    d = await make_daemon()
    async with connect(url(d)) as ws:
        c = Client(ws)
        for _ in range(5):
            answer = await c.ask({"command": "login", "password": "guess"})
            assert answer == {**answer, "success": False, "error": "wrong password"}
        answer = await c.ask({"command": "login", "password": "guess"})
        assert not answer["success"] and "too many failed attempts: wait" in answer["error"]
        right = (d.plug.state.path / "initial-password").read_text().strip()
        answer = await c.ask({"command": "login", "password": right})
        assert not answer["success"] and "wait" in answer["error"]  # even the right one waits
    failed = [e for e in d.plug.events if e.message == "failed login"]
    assert [(e.count, e.cause, e.subject) for e in failed] == [(5, "user 127.0.0.1", "login")]


async def test_a_login_gives_a_ticket_for_an_httponly_cookie_that_opens_later_connections(make_daemon):
    d = await make_daemon()
    password = (d.plug.state.path / "initial-password").read_text().strip()
    async with connect(url(d)) as ws:
        c = Client(ws)
        login = await c.ask({"command": "login", "password": password})
        assert login["success"] and login["initialPassword"] is True
        assert (await c.ask({"command": "switch", "state": "on"}))["relay"] is True
    status, headers = await get(d, f"/session?ticket={login['ticket']}")
    cookie = headers["Set-Cookie"]
    assert status == 204 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert (await get(d, f"/session?ticket={login['ticket']}"))[0] == 403  # once only
    session = cookie.split(";")[0]
    async with connect(url(d), additional_headers={"Cookie": session}) as ws:
        c = Client(ws)
        assert (await c.ask({"command": "request_session"}))["authenticated"] is True
        assert (await c.ask({"command": "switch", "state": "off"}))["relay"] is False
        assert (await c.ask({"command": "logout"}))["success"]
    async with connect(url(d), additional_headers={"Cookie": session}) as ws:
        assert (await Client(ws).ask({"command": "request_session"}))["authenticated"] is False
    assert "Max-Age=0" in (await get(d, "/session?logout=1"))[1]["Set-Cookie"]


async def test_a_page_of_another_site_cannot_open_the_websocket(make_daemon):
    d = await make_daemon(**{"http.trusted_origins": ["http://espplug.local"]})
    host = f"127.0.0.1:{d.web.port}"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url(d), origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    for allowed in (f"http://{host}", "http://espplug.local"):
        async with connect(url(d), origin=allowed) as ws:
            assert (await Client(ws).ask({"command": "request_things"}))["things"]


async def test_closed_reading_needs_a_login_too(make_daemon):
    d = await make_daemon(**{"http.open_reading": False})
    async with connect(url(d)) as ws:
        c = Client(ws)
        refused = await c.ask({"command": "request_things"})
        assert refused["command"] == "error" and "reading" in refused["error"]
        assert (await c.ask({"command": "login", "token": d.auth.cli_token}))["success"]
        assert (await c.ask({"command": "request_things"}))["command"] == "response_things"


async def test_esp_pages_may_change_without_a_login_only_when_allowed(make_daemon, factory):
    d = await make_daemon(**{"http.allow_unauthenticated_changes": True})
    async with connect(url(d)) as ws:
        answer = await Client(ws).ask({"command": "save_thing", "thing": {"id": 1, "value": 1}})
        assert answer["success"] and factory.pin(17).state is True


async def test_changing_the_password(make_daemon):
    d = await make_daemon()
    old = (d.plug.state.path / "initial-password").read_text().strip()
    async with connect(url(d)) as ws:
        c = Client(ws)
        await c.ask({"command": "login", "password": old})
        wrong = await c.ask({"command": "change_password", "old": "nope", "new": "long enough"})
        assert wrong["command"] == "error" and "old: is not the current password" in wrong["error"]
        short = await c.ask({"command": "change_password", "old": old, "new": "short"})
        assert short["command"] == "error" and "new: must be at least 8" in short["error"]
        done = await c.ask({"command": "change_password", "old": old, "new": "a new passphrase"})
        assert done["success"] and done["ticket"]
    assert not (d.plug.state.path / "initial-password").exists()
    async with connect(url(d)) as ws:
        c = Client(ws)
        assert not (await c.ask({"command": "login", "password": old}))["success"]
        assert (await c.ask({"command": "login", "password": "a new passphrase"}))["success"]


async def test_a_password_that_cannot_be_saved_leaves_the_old_one(make_daemon, monkeypatch):
    d = await make_daemon()
    state = d.plug.state
    old = (state.path / "initial-password").read_text().strip()
    write = state.write

    def failing(name: str, data: bytes, mode: int = 0o640) -> None:
        if name == "auth.json":
            raise StoreError(f"cannot write {state.path / name}: No space left on device")
        write(name, data, mode)

    async with connect(url(d)) as ws:
        c = Client(ws)
        assert (await c.ask({"command": "login", "password": old}))["success"]
        monkeypatch.setattr(state, "write", failing)
        refused = await c.ask({"command": "change_password", "old": old, "new": "a new passphrase"})
        assert refused["command"] == "error" and "No space left" in refused["error"]
    # The initial password is still the password, and the file that tells it is still there.
    assert (state.path / "initial-password").read_text().strip() == old
    monkeypatch.undo()
    async with connect(url(d)) as ws:
        c = Client(ws)
        assert not (await c.ask({"command": "login", "password": "a new passphrase"}))["success"]
        assert (await c.ask({"command": "login", "password": old}))["success"]
