"""Who may change things: the password, sessions, one-time tickets and the login rate limit.

There is no default password. On first start a random one is made, logged,
and written to `initial-password` (mode 0600) in the state directory; only a
salted scrypt hash of it is kept. Sessions are random tokens, stored hashed,
so a copy of the state directory logs nobody in. A token file
(`cli-token`, 0600) lets `plugctl` on the same machine log in without the
password. Named API tokens (`plugctl token add NAME`) let scripts use the HTTP
API; they too are kept only as hashes, and each can be revoked alone. Time is
passed in: this module has no clock of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from plugd.core.model import read_int, require_object
from plugd.doors.limits import LoginLimits
from plugd.errors import ValidationError
from plugd.service.store import StateDir, dump

log = logging.getLogger(__name__)

AUTH_FILE = "auth.json"
INITIAL_PASSWORD_FILE = "initial-password"
CLI_TOKEN_FILE = "cli-token"
#: scrypt cost: about 50 ms here, a few hundred on a small Pi; 16 MiB of memory.
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MIN_PASSWORD = 8
SESSION_IDLE = 30 * 86400  # seconds a session lives unused
MAX_SESSIONS = 32
TICKET_LIFE = 60.0
MAX_TOKENS = 32
#: What an API token's name may be: short, and fit for a command line and a log line.
TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
#: Who a request with the cli-token is.
CLI = "cli-token"


def hash_password(password: str, salt: bytes) -> bytes:
    """scrypt, so a stolen auth.json costs a guesser a good part of a second per try."""
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, maxmem=64 * 2**20, **SCRYPT)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class Credentials:
    """What auth.json holds: the password hash, the hashes of live sessions and API tokens."""

    salt: bytes
    hash: bytes
    #: sha256 of a session token -> wall time it was last used
    sessions: dict[str, float] = field(default_factory=dict)
    #: API token name -> {"hash": sha256 of the token, "created": wall time}
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """As kept in auth.json: the salt and the hash, never the password or a token."""
        return {"salt": self.salt.hex(), "hash": self.hash.hex(), "scrypt": SCRYPT,
                "sessions": self.sessions, "tokens": self.tokens}

    @classmethod
    def from_json(cls, obj: Any) -> Credentials:
        """Read auth.json; ValidationError names the field."""
        obj = require_object(obj, "auth")
        try:
            salt, digest = bytes.fromhex(obj["salt"]), bytes.fromhex(obj["hash"])
        except (KeyError, TypeError, ValueError):
            raise ValidationError("auth.hash", "is missing or not hexadecimal") from None
        cost = require_object(obj.get("scrypt"), "auth.scrypt")
        if {k: read_int(cost, k, "auth.scrypt") for k in SCRYPT} != SCRYPT:
            raise ValidationError("auth.scrypt", f"expected {SCRYPT}")
        sessions = require_object(obj.get("sessions", {}), "auth.sessions")
        tokens = require_object(obj.get("tokens", {}), "auth.tokens")
        kept = {}
        for name, token in tokens.items():
            token = require_object(token, f"auth.tokens.{name}")
            if not (TOKEN_NAME.fullmatch(name) and isinstance(token.get("hash"), str)
                    and isinstance(token.get("created"), (int, float))):
                raise ValidationError(f"auth.tokens.{name}", "expected a name, a hash and a time")
            kept[name] = {"hash": token["hash"], "created": float(token["created"])}
        return cls(salt, digest, {str(k): float(v) for k, v in sessions.items()
                                  if isinstance(v, (int, float))}, kept)


class Auth:
    """The password, the token for plugctl, sessions and the login rate limit."""
    def __init__(self, state: StateDir) -> None:
        self.state = state
        self.credentials = state.load(AUTH_FILE, Credentials.from_json, self._first_start)
        self.cli_token = self._cli_token()
        self._tickets: dict[str, tuple[str, float]] = {}
        #: Failed and pending logins, counted before each check.
        self.limits = LoginLimits()

    def _write_secret(self, name: str, text: str) -> None:
        self.state.write(name, (text + "\n").encode(), mode=0o600)

    def _first_start(self) -> Credentials:
        password = secrets.token_urlsafe(9)
        salt = secrets.token_bytes(16)
        credentials = Credentials(salt, hash_password(password, salt))
        self._write_secret(INITIAL_PASSWORD_FILE, password)
        self.state.write(AUTH_FILE, dump(credentials.to_json()))
        log.warning("no password was set: the initial password is %s (also in %s); "
                    "log in on the page and change it", password,
                    self.state.path / INITIAL_PASSWORD_FILE)
        return credentials

    def _cli_token(self) -> str:
        path = self.state.path / CLI_TOKEN_FILE
        try:
            token = path.read_text().strip()
        except OSError:
            token = ""
        if len(token) < 32:
            token = secrets.token_urlsafe(32)
            self._write_secret(CLI_TOKEN_FILE, token)
        return token

    # --- logging in -----------------------------------------------------------

    def begin_login(self, address: str, now: float) -> float:
        """Before a password or token is checked: how long `address` must wait first (0: go
        on, the attempt is counted as a failure until `end_login` says it succeeded)."""
        return self.limits.begin(address, now)

    def end_login(self, address: str, ok: bool, now: float) -> None:
        """After the check: a success clears the address's failures."""
        self.limits.end(address, ok, now)

    def check_password(self, password: str) -> bool:
        """Whether `password` is the password (slow on purpose: scrypt)."""
        return hmac.compare_digest(hash_password(password, self.credentials.salt),
                                   self.credentials.hash)

    def check_cli_token(self, token: str) -> bool:
        """Whether `token` is the token file's."""
        return hmac.compare_digest(token.encode(), self.cli_token.encode())

    def check_bearer(self, token: str) -> str | None:
        """Who an HTTP API token is: `CLI` for the token file's, the name of an API token, or
        None. Every stored hash is compared, so the time taken tells nothing."""
        found = CLI if self.check_cli_token(token) else None
        digest = _digest(token).encode()
        for name, kept in self.credentials.tokens.items():
            if hmac.compare_digest(digest, kept["hash"].encode()):
                found = name
        return found

    # --- API tokens -------------------------------------------------------------

    def add_token(self, name: str, wall: float) -> str:
        """A new API token called `name`, shown once; the caller saves the credentials."""
        if not isinstance(name, str) or not TOKEN_NAME.fullmatch(name):
            raise ValidationError("name", "expected 1 to 32 letters, digits, '_', '.' or '-', "
                                          "beginning with a letter or a digit")
        tokens = self.credentials.tokens
        if name in tokens:
            raise ValidationError("name", f"a token called {name!r} exists: revoke it first")
        if len(tokens) >= MAX_TOKENS:
            raise ValidationError("name", f"there are {MAX_TOKENS} tokens already: revoke one")
        token = secrets.token_urlsafe(32)
        tokens[name] = {"hash": _digest(token), "created": wall}
        return token

    def revoke_token(self, name: str) -> None:
        """Forget an API token: requests with it are refused from now on."""
        if self.credentials.tokens.pop(name, None) is None:
            raise ValidationError("name", f"no token is called {name!r}")

    def token_list(self) -> list[dict[str, Any]]:
        """The API tokens' names and when each was made (never the tokens)."""
        return [{"name": name, "created": kept["created"]}
                for name, kept in sorted(self.credentials.tokens.items())]

    # --- sessions -------------------------------------------------------------

    def new_session(self, wall: float) -> str:
        """A session token for a successful login; the caller saves the credentials."""
        token = secrets.token_urlsafe(32)
        sessions = self.credentials.sessions
        sessions[_digest(token)] = wall
        for stale in sorted(sessions, key=sessions.__getitem__)[:-MAX_SESSIONS]:
            del sessions[stale]
        return token

    def session_valid(self, token: str, wall: float) -> bool:
        """Whether the session is known and not expired at `wall`."""
        used = self.credentials.sessions.get(_digest(token))
        return used is not None and wall - used < SESSION_IDLE

    def end_session(self, token: str) -> None:
        """Forget a session (logout, password change)."""
        self.credentials.sessions.pop(_digest(token), None)

    def ticket_for(self, session: str, now: float) -> str:
        """A one-time ticket the page trades for its session cookie (scripts cannot read it)."""
        self._tickets = {t: v for t, v in self._tickets.items() if v[1] > now}
        ticket = secrets.token_urlsafe(24)
        self._tickets[ticket] = (session, now + TICKET_LIFE)
        return ticket

    def redeem(self, ticket: str, now: float) -> str | None:
        """The session a one-time ticket stands for, or None (used, unknown or expired)."""
        session, expires = self._tickets.pop(ticket, ("", 0.0))
        return session if expires > now else None

    def set_password(self, new: str) -> None:
        """A new password; every session but those the caller re-creates ends."""
        if len(new) < MIN_PASSWORD:
            raise ValidationError("new", f"must be at least {MIN_PASSWORD} characters")
        salt = secrets.token_bytes(16)
        self.credentials = Credentials(salt, hash_password(new, salt),
                                       tokens=self.credentials.tokens)

    def forget_initial_password(self) -> None:
        """Once the new password is on disk: until then the initial one may still be the one."""
        with contextlib.suppress(FileNotFoundError):
            (self.state.path / INITIAL_PASSWORD_FILE).unlink()

    def initial_password_in_use(self) -> bool:
        """Whether the generated password is still the password (the page then offers a change)."""
        return (self.state.path / INITIAL_PASSWORD_FILE).exists()

    def dump(self) -> bytes:
        """auth.json's content: the password's hash and the live sessions."""
        return dump(self.credentials.to_json())
