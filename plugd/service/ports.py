"""The daemon's two ports, the mesh's and the page's, opened before anything else.

A port plugd cannot have (another program holds it, it needs root, the bind address is not
this machine's) then stops the start before a state directory, a password or a pin is
touched, with one line that names the port and the way out, not a traceback.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from plugd.doors.udp import open_socket
from plugd.doors.web import listen
from plugd.errors import PlugdError
from plugd.service import rundir
from plugd.service.config import Config

#: Ports below this one are root's (or need CAP_NET_BIND_SERVICE).
FIRST_UNPRIVILEGED = 1024


class PortError(PlugdError):
    """A port plugd cannot listen on; the message names the port and the fix."""


@dataclass
class Ports:
    """The open sockets, handed to the mesh endpoint and the web server."""

    mesh: socket.socket
    http: list[socket.socket]


def open_ports(config: Config, http_socket: socket.socket | None = None) -> Ports:
    """The mesh's UDP socket and the page's listening sockets, or the one systemd passed
    (`http_socket`): all open, or none, and a PortError that says why."""
    mesh = config.mesh
    if mesh.udp_port == 0:
        # The kernel's choice would be a port no other node sends to: a mesh of one.
        raise PortError("the mesh needs a fixed UDP port, the same on every node, not 0; "
                        "choose one with --udp-port or [mesh] udp_port (ESP8266 nodes use 2390)")
    try:
        udp = open_socket(mesh.bind, mesh.udp_port)
    except PlugdError as err:
        # open_socket raises inside its `except OSError`: the OSError is the context.
        cause = err.__cause__ or err.__context__
        raise PortError(problem("mesh", mesh.bind, mesh.udp_port, cause)) from None
    if http_socket is not None:
        return Ports(udp, [http_socket])
    try:
        return Ports(udp, listen(config.http.bind, config.http.port))
    except OSError as err:
        udp.close()
        raise PortError(problem("http", config.http.bind, config.http.port, err)) from None


def problem(door: str, bind: str, port: int, err: BaseException | None) -> str:
    """What went wrong with `door`'s port ("http" or "mesh") and what to do, in one line."""
    code = err.errno if isinstance(err, OSError) else None
    if door == "http":
        name, option, key = f"port {port}", "--http-port", "http"
        others = "another plugd" if rundir.state_dir_of(port) is not None else "another program"
    else:
        name, option, key = f"UDP port {port} (the mesh's)", "--udp-port", "mesh"
        # Other plugd nodes on this machine share the mesh port: only a stranger holds it.
        others = "another program"
    if code == errno.EADDRINUSE:
        fix = f"choose another with {option}" if door == "http" else \
            f"choose another with {option}, the same on every node,"
        return f"{name} is in use (by {others}); {fix} or stop the other program"
    if code == errno.EACCES and 0 < port < FIRST_UNPRIVILEGED:
        other_way = "let systemd open it (plugd.socket)" if door == "http" else "run plugd as root"
        return (f"{name} is below {FIRST_UNPRIVILEGED}, which only root may open; choose one "
                f"from {FIRST_UNPRIVILEGED} up with {option}, or {other_way}")
    if code == errno.EADDRNOTAVAIL:
        return (f"cannot listen on {bind} {name}: {bind} is not an address of this machine; "
                f"change [{key}] bind, or leave it empty for every address")
    reason = getattr(err, "strerror", None) or str(err)
    return f"cannot listen on {name}: {reason}"
