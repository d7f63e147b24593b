"""Limits that hold against a hostile LAN: logins, connections, commands. Pure, time passed in.

Logins.
An attempt is counted *before* the password is checked (`begin`), as a
failure until `end` says it succeeded, so parallel guesses cannot all reach
scrypt. Failures count per address, per IPv6 /64 (one host has billions of
addresses in its /64) and in total; past each one's free allowance a further
try must wait, the wait doubling per failure up to a bound. Token logins
count the same. Memory is bounded: when the table is full, the entry forgotten
is the oldest one that is not locked out, so a locked-out address stays
locked however many other addresses fail; when every entry is locked, a new
address is counted in the total only.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass

#: Seconds a failure counts for.
WINDOW = 300.0


@dataclass(frozen=True, slots=True)
class Limit:
    """Failures allowed in WINDOW before each further try waits, and the longest wait."""

    free: int
    max_wait: float


#: One address; one IPv6 /64; everyone together (kept short: a guesser must not lock the owner
#: out for long).
PER_ADDRESS = Limit(free=5, max_wait=300.0)
PER_NETWORK = Limit(free=20, max_wait=300.0)
TOTAL = Limit(free=100, max_wait=30.0)
MAX_ENTRIES = 1024


def network_of(address: str) -> str | None:
    """The /64 an IPv6 address belongs to ("2001:db8:1:2::/64"), None for IPv4 or a name."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return None
    if ip.version != 6 or (ip.ipv4_mapped is not None):
        return None
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


class LoginLimits:
    """Failed and pending logins by address, by /64 and in total."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._total: deque[float] = deque(maxlen=TOTAL.free * 4)
        self.max_entries = max_entries

    def _keys(self, address: str) -> list[tuple[str, Limit]]:
        keys = [(address, PER_ADDRESS)]
        network = network_of(address)
        if network is not None:
            keys.append((network, PER_NETWORK))
        return keys

    def _prune(self, failures: deque[float], now: float) -> None:
        while failures and now - failures[0] > WINDOW:
            failures.popleft()

    def _wait(self, failures: deque[float], limit: Limit, now: float) -> float:
        self._prune(failures, now)
        over = len(failures) - limit.free
        if over < 0:
            return 0.0
        return max(0.0, failures[-1] + min(limit.max_wait, 2.0 ** (over + 1)) - now)

    def wait(self, address: str, now: float) -> float:
        """Seconds `address` must wait before its next try (0: it may try now)."""
        waits = [self._wait(self._failures[key], limit, now)
                 for key, limit in self._keys(address) if key in self._failures]
        return max([*waits, self._wait(self._total, TOTAL, now)])

    def begin(self, address: str, now: float) -> float:
        """Before checking a password or token: the wait, or 0 and the attempt counted as a
        failure until `end` says otherwise."""
        wait = self.wait(address, now)
        if wait > 0:
            return wait
        for key, _ in self._keys(address):
            failures = self._failures.get(key)
            if failures is None:
                if not self._make_room(now):
                    continue
                failures = self._failures[key] = deque(maxlen=64)
            failures.append(now)
        self._total.append(now)
        return 0.0

    def end(self, address: str, ok: bool, now: float) -> None:
        """After the check: a success takes back its counted failure and clears the address."""
        if not ok:
            return
        self._failures.pop(address, None)
        network = network_of(address)
        if network is not None and self._failures.get(network):
            self._failures[network].pop()
        if self._total:
            self._total.pop()

    def _make_room(self, now: float) -> bool:
        """Room for one more entry: the oldest entry not locked out goes; False if all are."""
        if len(self._failures) < self.max_entries:
            return True
        for key in list(self._failures):
            limit = PER_NETWORK if "/" in key else PER_ADDRESS
            if self._wait(self._failures[key], limit, now) == 0.0:
                del self._failures[key]
                return True
        return False

    def __len__(self) -> int:
        """How many addresses and networks are followed."""
        return len(self._failures)


def client_key(address: str) -> str:
    """Whom a connection counts against: its IPv4 address, or its IPv6 /64."""
    return network_of(address) or address


class ConnectionCounter:
    """Open connections in total and per client (an address, an IPv6 /64): a new one is
    admitted only under both caps, so one client cannot take every slot."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self._open: dict[str, int] = {}
        self._count = 0

    def admit(self, address: str) -> str | None:
        """Count a new connection from `address`; or say why it is refused."""
        key = client_key(address)
        if self._count >= self.total:
            return f"all {self.total} connections are in use"
        if self._open.get(key, 0) >= self.per_client:
            return f"{key} already holds {self.per_client} connections"
        self._open[key] = self._open.get(key, 0) + 1
        self._count += 1
        return None

    def release(self, address: str) -> None:
        """An admitted connection from `address` closed."""
        key = client_key(address)
        left = self._open.get(key, 0) - 1
        if left < 0:
            return
        self._count -= 1
        if left:
            self._open[key] = left
        else:
            del self._open[key]

    def __len__(self) -> int:
        """How many connections are open."""
        return self._count


class TokenBucket:
    """`rate` actions a second on average, `burst` at once: `take` says how long to wait."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float) -> float:
        """Take one token: 0 if there was one, else the seconds until there is (the token is
        then spoken for, so waiting that long and going on keeps the average rate)."""
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
