"""Which names the plug answers to, which pages may open its WebSocket, which paths are sane.

DNS rebinding: a web page on `evil.example` points its own name at the plug's
address, and the browser then sends the plug requests whose `Host` (and whose
`Origin`, for a WebSocket) name `evil.example`. Comparing `Origin` with `Host`
therefore proves nothing. The plug answers only to its own names (its
addresses, `localhost`, its `.local` names and `[http] server_names`), and a
page's origin must be one of those names, by the scheme and port the plug
serves, or one of `[http] trusted_origins` (an ESP8266 node's page).

Pure: whether an address is this machine's is asked of a function passed in.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Callable, Iterable

#: The longest request path (with its query) served; a longer one is a 400.
MAX_PATH = 2048
#: Ports a URL without one means.
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def split_host(host: str) -> tuple[str, int | None] | None:
    """`Host` (or an origin's netloc) as a lower-case name or address and a port, None if it
    is not one: "[::1]:8080" -> ("::1", 8080), "Plug.local." -> ("plug.local", None)."""
    host = host.strip().lower()
    if not host or any(c in host for c in " /\\@?#%\x00"):
        return None
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else ""
    else:
        name, _, port_text = host.partition(":")
        if ":" in port_text:
            return None  # an IPv6 address without brackets
    name = name.rstrip(".")
    if not name:
        return None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        return name, int(port_text)
    return name, None


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return None


class Names:
    """The names this plug answers to and the pages it trusts.

    `names`: host names ("localhost", "kitchen-plug.local", server_names),
    compared without case. `is_local`: whether an address is one of this
    machine's (addresses change with DHCP, so it is asked each time).
    `trusted_origins`: exact origins besides the plug's own.
    """

    def __init__(self, names: Iterable[str], is_local: Callable[[str], bool],
                 trusted_origins: Iterable[str] = ()) -> None:
        self.names = frozenset(n.lower().rstrip(".") for n in names if n)
        self.is_local = is_local
        self.trusted_origins = frozenset(o.rstrip("/").lower() for o in trusted_origins)

    def own(self, name: str) -> bool:
        """Whether a bare name or address (no port) is this plug."""
        address = _address(name)
        if address is not None:
            return address.is_loopback or self.is_local(str(address))
        return name in self.names

    def host_problem(self, host: str | None) -> str | None:
        """Why a request's `Host` is not this plug (None: it is)."""
        if host is None:
            return "the request names no host"
        parts = split_host(host)
        if parts is None:
            return f"the host {host[:100]!r} is not a host name"
        if not self.own(parts[0]):
            return (f"this plug does not answer to {parts[0][:100]!r}; add it to "
                    "http.server_names if it is one of the plug's names")
        return None

    def origin_problem(self, origin: str, scheme: str, port: int | None) -> str | None:
        """Why a page of `origin` may not use the WebSocket served by `scheme` ("http" or
        "https") on `port` (None: it may). Browsers send Origin on every WebSocket
        handshake and a page cannot forge it; a script or plugctl sends none."""
        text = origin.strip().rstrip("/").lower()
        if text in self.trusted_origins:
            return None
        refusal = f"origin {origin[:100]} is not this plug nor in http.trusted_origins"
        parts = urllib.parse.urlsplit(text)
        netloc = split_host(parts.netloc) if parts.netloc else None
        if netloc is None or parts.scheme != scheme or parts.path or parts.query:
            return refusal
        name, origin_port = netloc
        if not self.own(name):
            return refusal
        if port is not None and (origin_port or DEFAULT_PORTS[scheme]) != port:
            return refusal
        return None


def path_problem(raw_path: bytes) -> str | None:
    """Why a request path is refused with 400 (None: it is served): too long, a NUL, a
    control character or bytes that are not UTF-8, sent as they are or percent-encoded."""
    if len(raw_path) > MAX_PATH:
        return f"the path is longer than {MAX_PATH} bytes"
    try:
        text = urllib.parse.unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        return "the path is not UTF-8"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return "the path holds a control character"
    return None
