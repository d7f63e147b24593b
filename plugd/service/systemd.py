"""What plugd does with systemd: readiness and watchdog, socket activation, the journal.

All of it is optional. systemd-python (the `systemd` package, built against libsystemd)
is used when it is installed; without it the two protocols plugd cannot do without,
sd_notify and socket activation, are spoken by hand, so a `Type=notify` unit still
starts after a plain `pip install`. Outside systemd every call here is a quiet no-op.

The bindings read the process environment, not a mapping: they are used only when the
`environ` given is `os.environ` itself, which is what the daemon passes.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from types import ModuleType

log = logging.getLogger(__name__)

LISTEN_FDS_START = 3
IDENTIFIER = "plugd"
#: Record attributes under this prefix become journal fields (upper-cased).
FIELD_PREFIX = "plugd_"


def _bindings(name: str, environ: Mapping[str, str] | None = None) -> ModuleType | None:
    """`systemd.<name>` when systemd-python is installed and may read the environment."""
    if environ is not None and environ is not os.environ:
        return None
    try:
        return importlib.import_module(f"systemd.{name}")
    except ImportError:
        return None


# --- sd_notify ---------------------------------------------------------------


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises; None if not for us."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
        pid = int(environ.get("WATCHDOG_PID") or os.getpid())
    except ValueError:
        return None
    if usec <= 0 or pid != os.getpid():
        return None
    return usec / 2e6


class Notifier:
    """Tells systemd how the daemon is doing, when systemd asked to be told ($NOTIFY_SOCKET)."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.address = environ.get("NOTIFY_SOCKET") or None
        self._daemon = _bindings("daemon", environ)
        #: Seconds between two `watchdog()` calls; None: systemd watches no watchdog of ours.
        self.watchdog_interval = _watchdog_interval(environ) if self.address else None

    def ready(self, status: str = "") -> None:
        """Start-up is done: a `Type=notify` unit counts as started (again, after a reload)."""
        self._send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        """One line for `systemctl status`."""
        self._send(f"STATUS={text}")

    def watchdog(self) -> None:
        """Still alive: call every `watchdog_interval` seconds, or systemd kills the daemon."""
        if self.watchdog_interval is not None:
            self._send("WATCHDOG=1")

    def stopping(self) -> None:
        """Tell systemd the daemon is stopping."""
        self._send("STOPPING=1")

    def reloading(self) -> None:
        """A reload has begun; `ready()` ends it. The timestamp is what systemd >= 253 asks for."""
        self._send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def _send(self, *fields: str) -> None:
        if self.address is None:
            return
        message = "\n".join(field.replace("\n", " ") for field in fields)
        try:
            if self._daemon is not None:
                self._daemon.notify(message)
            else:
                self._send_datagram(message.encode())
        except OSError as err:
            log.warning("cannot notify systemd at %s: %s", self.address, err)

    def _send_datagram(self, message: bytes) -> None:
        assert self.address is not None
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)


# --- socket activation ---------------------------------------------------------------


def _passed_fds(environ: Mapping[str, str]) -> list[int]:
    """The descriptors systemd passed to this very process, made close-on-exec."""
    try:
        if int(environ.get("LISTEN_PID", "")) != os.getpid():
            return []
        count = int(environ.get("LISTEN_FDS", ""))
    except ValueError:
        return []
    fds = list(range(LISTEN_FDS_START, LISTEN_FDS_START + max(count, 0)))
    for fd in fds:
        os.set_inheritable(fd, False)
    return fds


def _is_listening_tcp(sock: socket.socket) -> bool:
    return (sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
            and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 0)


def listen_socket(environ: MutableMapping[str, str] = os.environ) -> socket.socket | None:
    """The first listening TCP socket systemd passed (plugd.socket); None when not activated.

    The variables are removed, as sd_listen_fds(unset=1) does: a child must not take the
    sockets for its own. Raises OSError if the variables name descriptors that are not open.
    """
    daemon = _bindings("daemon", environ)
    fds = daemon.listen_fds(unset_environment=True) if daemon is not None else _passed_fds(environ)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(name, None)
    chosen: socket.socket | None = None
    for fd in fds:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:  # not a socket
            continue
        if chosen is None and _is_listening_tcp(sock):
            chosen = sock
        else:
            log.warning("ignoring socket %s passed by systemd", sock.getsockname())
            sock.detach()
    return chosen


# --- the journal ---------------------------------------------------------------


def _is_journal_stream(value: str, fd: int) -> bool:
    """Whether `fd` is the stream systemd connected to the journal ($JOURNAL_STREAM)."""
    try:
        device, inode = (int(part) for part in value.split(":"))
        stat = os.fstat(fd)
    except (ValueError, OSError):
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)


class JournalFields(logging.Filter):
    """Copies `plugd_*` record attributes to their upper-case names.

    systemd-python's JournalHandler sends every record attribute as a field under its own
    name, and journald drops names that are not upper case: `extra={"plugd_node": 7}` would
    be lost, PLUGD_NODE=7 is kept (`journalctl PLUGD_NODE=7`).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the event's kind to the record, as a journal field."""
        for name, value in list(vars(record).items()):
            if name.startswith(FIELD_PREFIX):
                setattr(record, name.upper(), value)
        return True


def journal_handler(environ: Mapping[str, str] = os.environ,
                    stderr_fd: int = 2) -> logging.Handler | None:
    """A handler to the journal when stderr goes there anyway and the bindings are installed.

    journald reads stderr too, but as plain lines: the native protocol keeps the priority
    of each message and its `plugd_*` fields. None means: log to stderr as usual.
    """
    journal = _bindings("journal")
    if journal is None or not _is_journal_stream(environ.get("JOURNAL_STREAM", ""), stderr_fd):
        return None
    handler: logging.Handler = journal.JournalHandler(SYSLOG_IDENTIFIER=IDENTIFIER)
    handler.addFilter(JournalFields())
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    return handler


# --- no log storms ---------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    started: float
    count: int = 0
    last: logging.LogRecord | None = None


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # bad arguments: logging reports those when it formats the record
        return str(record.msg)


class RepeatFilter(logging.Filter):
    """Lets the first of a message through, counts its repeats for `window` seconds, then
    logs how many there were.

    A fault met on every packet or sample would otherwise flood the journal, and journald's
    rate limit then drops the daemon's other messages with the flood. Only identical records
    are repeats: the same logger, level and message as rendered, so "node A online" and "node B
    online" are two messages and both reach the journal. The count is logged by the first
    record after the window, or by `flush()`. Attach it to a handler.

    At most `runs` messages are followed at once: a storm of distinct messages (spoofed node
    ids) ends the oldest run early, with its count, rather than growing without bound.
    """

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 runs: int = 1024) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self.runs = runs
        self._runs: dict[tuple[str, int, str], _Run] = {}  # in the order they started
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """Let the first of a message through; count its repeats."""
        if hasattr(record, "plugd_repeats"):  # a count of ours, on its way through
            return True
        key = (record.name, record.levelno, _message(record))
        with self._lock:
            summaries = self._expire()
            run = self._runs.get(key)
            if run is None:
                summaries += self._make_room()
                self._runs[key] = _Run(self.clock())
            else:
                run.count += 1
                run.last = record
        self._log(summaries)
        return run is None

    def flush(self) -> None:
        """Log the counts of the windows that have ended, without waiting for a next record."""
        with self._lock:
            summaries = self._expire()
        self._log(summaries)

    def _expire(self) -> list[logging.LogRecord]:
        now = self.clock()
        summaries = []
        while self._runs:
            key, run = next(iter(self._runs.items()))
            if now - run.started < self.window:
                break
            del self._runs[key]
            if run.last is not None:
                summaries.append(self._summary(run, now))
        return summaries

    def _make_room(self) -> list[logging.LogRecord]:
        now = self.clock()
        summaries = []
        while self._runs and len(self._runs) >= self.runs:
            run = self._runs.pop(next(iter(self._runs)))
            if run.last is not None:
                summaries.append(self._summary(run, now))
        return summaries

    @staticmethod
    def _summary(run: _Run, now: float) -> logging.LogRecord:
        last = run.last
        assert last is not None
        record = logging.LogRecord(last.name, last.levelno, last.pathname, last.lineno,
                                   "%s (repeated %d times in the last %.0f s)",
                                   (_message(last), run.count, now - run.started), None,
                                   last.funcName)
        record.__dict__.update((k, v) for k, v in vars(last).items() if k.startswith(FIELD_PREFIX))
        record.plugd_repeats = run.count
        return record

    @staticmethod
    def _log(summaries: list[logging.LogRecord]) -> None:
        for record in summaries:
            logging.getLogger(record.name).handle(record)
