"""The WebSocket API's frame: one client's conversation, the command registry and dispatch.

Requests and answers keep the ESP8266 firmware's shapes; plugd's own commands
are additions. Bad input gets `{"command": "error", "error": ...}` naming the
field, and nothing stored changes. Reading is open unless `http.open_reading`
is off; every change needs a logged-in session (or
`http.allow_unauthenticated_changes`). The commands live in the modules of
this package by concern; each registers itself with `command`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from plugd.core.model import describe, require_object
from plugd.core.plug import Cause
from plugd.doors.messages import message
from plugd.errors import PlugdError, ValidationError
from plugd.service.plug import Plug

if TYPE_CHECKING:
    from plugd.doors.auth import Auth
    from plugd.hardware.sim.rig import Simulation
    from plugd.service.config import Config
    from plugd.service.energydb import EnergyHistory
    from plugd.service.meter import Meter
    from plugd.service.scheduler import Scheduler


Handler = Callable[["Api", dict[str, Any]], Awaitable[dict[str, Any]]]


class Host(Protocol):
    """What the commands need from the daemon that runs them."""

    plug: Plug
    #: The commands this daemon answers (the simulation's only under --simulate).
    commands: Mapping[str, Handler]
    meter: Meter | None
    #: The energy and power history (None: no meter).
    energy_history: EnergyHistory | None
    simulation: Simulation | None
    #: The schedules: their list, storage and runs.
    scheduler: Scheduler
    auth: Auth
    config: Config

    def status(self) -> dict[str, Any]:
        """What `request_status` answers."""

    def history(self) -> list[list[float | None]]:
        """The last 10 minutes of power, for `request_history`."""

    def sessions_ended(self) -> None:
        """Sessions were ended: close the connections that still hold one."""

    def changing(self) -> AbstractContextManager[None]:
        """Held while a person's change runs: it goes before the mesh's datagrams."""

    async def save_settings(self, changes: dict[str, Any]) -> None:
        """Check, keep and apply settings from the page; ConfigError names a bad one."""


#: The commands every daemon answers.
COMMANDS: dict[str, Handler] = {}
#: Commands anyone may send; READ ones need `open_reading` or a login; all others change things.
PUBLIC = frozenset({"request_session", "login", "logout"})
READ = frozenset({"request_nodes", "request_things", "request_recipes", "request_status",
                  "request_events", "request_history", "request_energy", "request_settings", "export_config",
                  "request_schedules"})


def command(name: str, table: dict[str, Handler] = COMMANDS) -> Callable[[Handler], Handler]:
    """Register the decorated handler in `table` as the answer to `name`."""

    def register(handler: Handler) -> Handler:
        table[name] = handler
        return handler
    return register


def nested(msg: dict[str, Any], key: str) -> dict[str, Any]:
    """The `thing`/`recipe` of a save: a JSON object, or (as the firmware allows) a JSON string."""
    if key not in msg:
        raise ValidationError(key, "is missing")
    value = msg[key]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise ValidationError(key, "is a string that is not valid JSON") from None
    return require_object(value, key)


class Api:
    """One client's conversation: its address, and its session once it logged in."""

    def __init__(self, host: Host, who: str = "user", session: str | None = None, *,
                 trusted: bool = False) -> None:
        self.host = host
        self.plug = host.plug
        self.who = who
        self.session = session
        #: An in-process caller (a benchmark): it may change without logging in.
        self.trusted = trusted

    @property
    def authenticated(self) -> bool:
        """Logged in (or trusted): changes are allowed. Checked at every use, so a session
        ended anywhere (logout, a password change, expiry) takes its rights at once."""
        return self.trusted or (self.session is not None
                                and self.host.auth.session_valid(self.session, self.plug.wall()))

    @property
    def may_read(self) -> bool:
        """Whether this client may read (open reading, or logged in)."""
        return self.authenticated or self.host.config.http.open_reading

    @property
    def may_change(self) -> bool:
        """Whether this client may change things (logged in, or changes left open)."""
        return self.authenticated or self.host.config.http.allow_unauthenticated_changes

    def _refusal(self, name: str) -> dict[str, Any] | None:
        if name in PUBLIC or (self.may_read if name in READ else self.may_change):
            return None
        what = "reading" if name in READ else "changes"
        return self.answer("error", request=name, login=True,
                           error=f"login required: {what} need a logged-in session")

    def answer(self, command_name: str, **fields: Any) -> dict[str, Any]:
        """An answer frame: every one names its command and this node."""
        return message(self.plug, command_name, **fields)

    async def handle(self, text: str | bytes) -> dict[str, Any]:
        """Answer one request frame; never raises for bad input."""
        request_name = None
        try:
            try:
                msg = json.loads(text)
            except (ValueError, RecursionError):
                raise ValidationError("", "the message is not valid JSON") from None
            msg = require_object(msg, "message")
            name = msg.get("command")
            if not isinstance(name, str):
                raise ValidationError("command", "is missing" if "command" not in msg
                                      else f"expected a string, got {describe(name)}")
            request_name = name  # echoed in an error answer: never a NaN or an object sent back
            handler = self.host.commands.get(request_name)
            if handler is None:
                return self.answer("response_default")
            refusal = self._refusal(request_name)
            if refusal is not None:
                return refusal
            if request_name in READ or request_name in PUBLIC:
                return await handler(self, msg)
            with self.host.changing():  # a person's change goes before the mesh's datagrams
                return await handler(self, msg)
        except PlugdError as err:
            return self.answer("error", request=request_name, error=str(err))

    @property
    def cause(self) -> Cause:
        """What this client's changes are recorded as: a person at an address."""
        return Cause("user", self.who)
