"""Commands for the HTTP API's tokens (`plugctl token add|list|revoke`): logged-in only.

A token is shown once, when it is made; only its hash is kept, in auth.json,
so a lost token is revoked and another made.
"""

from __future__ import annotations

from typing import Any

from plugd.doors.api.base import Api, command
from plugd.doors.api.sessions import text
from plugd.doors.auth import AUTH_FILE


@command("add_token")
async def _add_token(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """A new token for `name`; the answer carries it, and nothing else ever will."""
    auth, plug = api.host.auth, api.plug
    name = text(msg, "name")
    token = auth.add_token(name, plug.wall())
    try:
        await plug.writer.save(AUTH_FILE, auth.dump())
    except Exception:
        auth.credentials.tokens.pop(name, None)  # not on disk, so not made
        raise
    plug.record("auth", f"API token {name} made", api.cause, "token")
    return api.answer("response_add_token", success=True, name=name, token=token)


@command("request_tokens")
async def _request_tokens(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_tokens", tokens=api.host.auth.token_list())


@command("revoke_token")
async def _revoke_token(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Forget `name`'s token: the next request with it is refused."""
    auth, plug = api.host.auth, api.plug
    name = text(msg, "name")
    kept = dict(auth.credentials.tokens.get(name) or {})
    auth.revoke_token(name)
    try:
        await plug.writer.save(AUTH_FILE, auth.dump())
    except Exception:
        auth.credentials.tokens[name] = kept  # still on disk, so still valid after a restart
        raise
    plug.record("auth", f"API token {name} revoked", api.cause, "token")
    return api.answer("response_revoke_token", success=True, name=name)
