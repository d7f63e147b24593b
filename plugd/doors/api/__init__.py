"""The WebSocket API, a module per concern: sessions, things and recipes, configuration,
status and events, the energy history, the schedules, the HTTP API's tokens; and the simulation's commands,
loaded only under --simulate.

A success answer leaves once the change is on disk, so a crash right after it
loses nothing. A change that cannot be written (a full disk) is answered with
an error and is not in force, except a relay switch: the relay stays switched
and the error says it was not saved.
"""

from plugd.doors.api import configuration, energy, schedules, sessions, status, things, tokens
from plugd.doors.api.base import COMMANDS, Api, Handler, Host, command

__all__ = ["COMMANDS", "Api", "Handler", "Host", "command", "configuration", "energy", "schedules",
           "sessions", "status", "things", "tokens"]
