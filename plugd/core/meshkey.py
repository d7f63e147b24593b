"""Signed mesh datagrams: a shared key keeps strangers on the LAN from driving recipes.

With `[mesh] mesh_key` set, every datagram plugd sends ends in two more fields:

    <nodeId>:<name>&1:1.00&...&ctr:<counter>&sig:<tag>

`tag` is the first 16 bytes of HMAC-SHA256(key, every byte before `&sig:`), as
32 lowercase hex digits; the counter is inside what is signed. An ESP8266 reads
both fields as thing id 0 (`atoi("ctr")`, `atoi("sig")`), which no recipe uses,
and each has its `:`, which the firmware needs.

The counter is `boot * 2**32 + sequence`. `boot` is taken once per start as
max(last boot + 1, wall-clock seconds) and stored before the first send, so it
grows across restarts even on a Pi without a real-time clock that boots in
1970 (the stored number carries it), and even if the file is lost while the
clock is right (the clock carries it). Receivers accept from each node id only
a counter above the last they accepted from it.

This module does no I/O and keeps no clock (`plugd.service.meshboot` keeps the boot number): the caller says
what it received, from which node id and address.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable
from typing import NamedTuple

from plugd.core.wire import MAX_DATAGRAM
from plugd.errors import WireError

#: Hex digits of the tag: 16 bytes of the HMAC, far beyond guessing on a LAN.
TAG_HEX = 32
COUNTER_FIELD = b"&ctr:"
TAG_FIELD = b"&sig:"
SEQUENCE_BITS = 32
#: Node ids whose last counter and address are remembered, at most (only valid packets add one).
MAX_SENDERS = 4096
_MAX_COUNTER_DIGITS = 20


#: A mesh key must be at least this long, and carry at least this many bits by `key_bits`.
MIN_KEY_LENGTH = 16
MIN_KEY_BITS = 64
_POOLS = ((str.islower, 26), (str.isupper, 26), (str.isdigit, 10))


def key_bits(key: str) -> float:
    """A cautious estimate of a key's strength in bits: each *distinct* character other than
    white space counts for the alphabet its classes span (lower, upper, digits, other
    printable), so repeats, blanks and a small alphabet count little ("aaaa..." is about 5
    bits, 24 random letters and digits about 140)."""
    chars = {c for c in key if not c.isspace()}
    pool = sum(size for test, size in _POOLS if any(test(c) for c in chars))
    if any(not (c.islower() or c.isupper() or c.isdigit()) for c in chars):
        pool += 33
    return len(chars) * math.log2(pool) if pool > 1 else 0.0


def key_problem(key: str) -> str | None:
    """Why `key` is not fit to sign the mesh, or None when it is (empty: no signing)."""
    if not key:
        return None
    if len(key) < MIN_KEY_LENGTH:
        return f"must be empty (no signing) or at least {MIN_KEY_LENGTH} characters, got {len(key)}"
    if key != key.strip():
        return "must not begin or end with white space (a stray blank is easy to miss)"
    bits = key_bits(key)
    if bits < MIN_KEY_BITS:
        return (f"is too easy to guess: about {bits:.0f} bits, at least {MIN_KEY_BITS} needed "
                f"(repeats and a small alphabet count little); `plugd --gen-key` prints a good one")
    return None


def tag(key: bytes, body: bytes) -> bytes:
    """The tag of `body` (everything before `&sig:`), as sent: lowercase hex."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()[:TAG_HEX].encode("ascii")


def sign(data: bytes, key: bytes, counter: int) -> bytes:
    """`data` (a datagram as `wire.encode` makes it) with its counter and tag appended."""
    if counter < 0:
        raise WireError(f"counter {counter} is negative")
    body = data + COUNTER_FIELD + str(counter).encode("ascii")
    signed = body + TAG_FIELD + tag(key, body)
    if len(signed) > MAX_DATAGRAM:
        raise WireError(f"signed datagram of {len(signed)} bytes exceeds {MAX_DATAGRAM}")
    return signed


def is_signed(data: bytes) -> bool:
    """Whether the datagram carries a tag field at all (valid or not)."""
    return TAG_FIELD in data.split(b"\0", 1)[0]


def verify(data: bytes, key: bytes) -> int | None:
    """The counter of a datagram whose tag is right; None when tag or layout is wrong.

    The tag must be the last field and the counter the one before it; bytes
    after a NUL are ignored, as the decoder ignores them.
    """
    data = data.split(b"\0", 1)[0]
    cut = data.rfind(TAG_FIELD)
    if cut < 0:
        return None
    body, received = data[:cut], data[cut + len(TAG_FIELD):]
    if len(received) != TAG_HEX or not hmac.compare_digest(received, tag(key, body)):
        return None
    start = body.rfind(COUNTER_FIELD)
    if start < 0:
        return None
    digits = body[start + len(COUNTER_FIELD):]
    if not digits.isdigit() or len(digits) > _MAX_COUNTER_DIGITS:
        return None
    return int(digits)


class Signer:
    """Signs this node's datagrams with counters that only grow."""

    def __init__(self, key: bytes, boot: int) -> None:
        self._key = key
        self._next = boot << SEQUENCE_BITS

    def sign(self, data: bytes) -> bytes:
        """`data` with the next counter and its tag; counters never repeat across restarts."""
        signed = sign(data, self._key, self._next)
        self._next += 1
        return signed


def next_boot(previous: int, wall: float) -> int:
    """This start's boot number: above the last one, and at least the clock's seconds.

    A clock past 2106 (2**32 s) is ignored, so counters keep within 20 digits.
    """
    clock = int(wall)
    return max(previous + 1, clock if clock < 2**32 else 0)


class Verdict(NamedTuple):
    """What the guard decided about one datagram.

    `refused` names the counter the refusal counts in (None: accepted);
    `moved_from` is the node's previous address when it now speaks from another;
    `report` is true for the first move of each node id only, so a node that
    flaps between addresses cannot flood the log and the event list.
    """

    refused: str | None
    moved_from: str | None = None
    report: bool = False


ACCEPTED = Verdict(None)


class Guard:
    """The receiving side: checks tags, refuses replays, and notices nodes that move.

    Unsigned datagrams pass only from `trusted` node ids (ESP8266 nodes, which
    cannot sign). A node id heard from a new address is reported, not refused:
    DHCP moves nodes legitimately, and the tag already proves who signed.
    """

    def __init__(self, key: bytes, trusted: Iterable[int] = (), *,
                 max_senders: int = MAX_SENDERS) -> None:
        self._key = key
        self.trusted = frozenset(trusted)
        self.max_senders = max_senders
        self.last_counter: dict[int, int] = {}
        self.addresses: dict[int, str] = {}
        self._reported: set[int] = set()

    def check(self, data: bytes, node_id: int, address: str) -> Verdict:
        """The verdict on one datagram of `node_id` from `address`; remembers its counter when accepted."""
        if is_signed(data):
            counter = verify(data, self._key)
            if counter is None:
                return Verdict("bad_tag")
            last = self.last_counter.get(node_id)
            if last is not None and counter <= last:
                return Verdict("replayed")
            if last is None and len(self.last_counter) >= self.max_senders:
                return Verdict("dropped_full")
            self.last_counter[node_id] = counter
        elif node_id not in self.trusted:
            return Verdict("unsigned_refused")
        previous = self.addresses.get(node_id)
        if previous == address:
            return ACCEPTED
        if previous is None and len(self.addresses) >= self.max_senders:
            return ACCEPTED  # a new trusted ESP beyond the bound: accepted, its moves not tracked
        self.addresses[node_id] = address
        if previous is None:
            return ACCEPTED
        report = node_id not in self._reported
        self._reported.add(node_id)
        return Verdict(None, previous, report)
