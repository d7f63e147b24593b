"""Commands of a session: whether one is open, logging in and out, changing the password."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from plugd.core.model import describe
from plugd.doors.api.base import Api, command
from plugd.doors.auth import AUTH_FILE
from plugd.errors import StoreError, ValidationError


@command("request_session")
async def _request_session(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    http = api.host.config.http
    return api.answer("response_session", authenticated=api.authenticated,
                      readingOpen=http.open_reading,
                      changesOpen=http.allow_unauthenticated_changes,
                      initialPassword=api.host.auth.initial_password_in_use())


def text(msg: dict[str, Any], key: str) -> str:
    """A non-empty string field, or a ValidationError naming it."""
    value = msg.get(key)
    if not isinstance(value, str) or not value:
        raise ValidationError(key, "is missing" if key not in msg else f"expected a string, got "
                                                                      f"{describe(value)}")
    return value


@command("login")
async def _login(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """`password` (people), or `token` (the token file, for plugctl and scripts)."""
    auth, plug = api.host.auth, api.plug
    now = plug.monotonic()
    secret = text(msg, "token") if "token" in msg else text(msg, "password")
    wait = auth.begin_login(api.who, now)  # counted before the check: parallel guesses wait too
    if wait > 0:
        return api.answer("response_login", success=False,
                          error=f"too many failed attempts: wait {math.ceil(wait)} s")
    if "token" in msg:
        ok = auth.check_cli_token(secret)
        why = "wrong token"
    else:
        # scrypt takes a good part of a second on a small Pi: not on the event loop
        ok = await asyncio.to_thread(auth.check_password, secret)
        why = "wrong password"
    auth.end_login(api.who, ok, plug.monotonic())
    if not ok:
        plug.record("auth", "failed login", api.cause, "login")  # one line, counted, in a storm
        return api.answer("response_login", success=False, error=why)
    session = auth.new_session(plug.wall())
    try:
        await plug.writer.save(AUTH_FILE, auth.dump())
    except StoreError:
        auth.end_session(session)  # refused, so not logged in either
        raise
    api.session = session
    return api.answer("response_login", success=True, ticket=auth.ticket_for(api.session, now),
                      initialPassword=auth.initial_password_in_use())


@command("logout")
async def _logout(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    if api.session is not None:
        api.host.auth.end_session(api.session)
        api.session = None
        await api.plug.writer.save(AUTH_FILE, api.host.auth.dump())
        api.host.sessions_ended()  # the same session in other tabs ends now too
    return api.answer("response_logout", success=True)


@command("change_password")
async def _change_password(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Ends every other session; this one gets a new ticket for its cookie."""
    auth, plug = api.host.auth, api.plug
    old, new = text(msg, "old"), text(msg, "new")
    now = plug.monotonic()
    if auth.begin_login(api.who, now) > 0:  # counted before the check, as a login is
        raise ValidationError("old", "too many failed attempts: wait and try again")
    ok = await asyncio.to_thread(auth.check_password, old)
    auth.end_login(api.who, ok, plug.monotonic())
    if not ok:
        raise ValidationError("old", "is not the current password")
    before, session = auth.credentials, api.session
    await asyncio.to_thread(auth.set_password, new)
    api.session = auth.new_session(plug.wall())
    try:
        await plug.writer.save(AUTH_FILE, auth.dump())
    except StoreError:
        auth.credentials, api.session = before, session  # the old password stays the password
        raise
    auth.forget_initial_password()
    api.host.sessions_ended()  # every other session ends now, open connections included
    plug.record("auth", "password changed", api.cause, "password")
    return api.answer("response_change_password", success=True,
                      ticket=auth.ticket_for(api.session, now))
