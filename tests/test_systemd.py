"""plugd.service.systemd against fake systemd ends: a notify socket, inherited listening sockets, a
journal stream, and a clock for the repeat filter. Each protocol is tested twice where it
matters: through systemd-python's bindings, and by hand as after a pip install without them.
Last, what the unit gives the daemon: its open-file limit and the group that reads the
configuration (tests/test_units.py verifies and rates the sandbox)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plugd.service.config import HttpConfig
from plugd.service.systemd import JournalFields, Notifier, RepeatFilter, journal_handler, listen_socket
from tests.test_units import EXEC_START, SERVICE, SOCKET, needs_analyze, settings

WITH_BINDINGS = pytest.param("bindings", id="bindings")
BY_HAND = pytest.param("by-hand", id="by-hand")


@pytest.fixture(params=[WITH_BINDINGS, BY_HAND])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Either systemd-python is importable, or it is not (as on a machine without it)."""
    if request.param == "bindings":
        pytest.importorskip("systemd.daemon", reason="systemd-python is not installed")
    else:
        for name in ("systemd", "systemd.daemon", "systemd.journal"):
            monkeypatch.setitem(sys.modules, name, None)
    return request.param


@pytest.fixture
def make_notifier(mode: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], Notifier]:
    """A Notifier on `env`. The bindings read the real environment, so there it is set there."""
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)

    def make(env: dict[str, str]) -> Notifier:
        if mode == "by-hand":
            return Notifier(env)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return Notifier(os.environ)

    return make


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose paths fit in a unix socket address (108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="plugd-") as name:
        yield Path(name)


@pytest.fixture
def systemd_end(short_dir: Path) -> Iterator[socket.socket]:
    """systemd's end of $NOTIFY_SOCKET: a unix datagram socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(short_dir / "notify"))
        sock.setblocking(False)
        yield sock


def received(sock: socket.socket) -> list[str]:
    """What was sent so far; a local datagram is queued by the time sendto() returns."""
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


# --- sd_notify ----------------------------------------------------------------


def test_notifications_reach_the_socket(make_notifier: Callable[[dict[str, str]], Notifier],
                                        systemd_end: socket.socket) -> None:
    notifier = make_notifier({"NOTIFY_SOCKET": systemd_end.getsockname(),
                              "WATCHDOG_USEC": "30000000"})
    notifier.ready("node 7 (Kitchen), page on port 80")
    notifier.status("3 nodes online\nrelay on")
    notifier.watchdog()
    notifier.stopping()
    assert received(systemd_end) == ["READY=1\nSTATUS=node 7 (Kitchen), page on port 80",
                                     "STATUS=3 nodes online relay on", "WATCHDOG=1", "STOPPING=1"]


def test_reloading_carries_a_monotonic_timestamp(
        make_notifier: Callable[[dict[str, str]], Notifier], systemd_end: socket.socket) -> None:
    notifier = make_notifier({"NOTIFY_SOCKET": systemd_end.getsockname()})
    notifier.reloading()
    notifier.ready()
    reloading, ready = received(systemd_end)
    first, stamp = reloading.split("\n")
    assert first == "RELOADING=1"
    assert stamp.startswith("MONOTONIC_USEC=") and int(stamp.split("=")[1]) > 0
    assert ready == "READY=1"


def test_the_abstract_namespace(make_notifier: Callable[[dict[str, str]], Notifier]) -> None:
    name = f"plugd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as end:
        end.bind("\0" + name)
        end.setblocking(False)
        make_notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert received(end) == ["READY=1"]


def test_bindings_are_used_when_importable(monkeypatch: pytest.MonkeyPatch,
                                           systemd_end: socket.socket) -> None:
    daemon = pytest.importorskip("systemd.daemon", reason="systemd-python is not installed")
    sent = []
    monkeypatch.setattr(daemon, "notify", lambda message, *args: sent.append(message) or True)
    monkeypatch.setenv("NOTIFY_SOCKET", systemd_end.getsockname())
    Notifier().ready()
    assert sent == ["READY=1"]
    assert received(systemd_end) == []


def test_bindings_are_not_used_for_another_environment(monkeypatch: pytest.MonkeyPatch,
                                                       systemd_end: socket.socket) -> None:
    """They would read the process environment, which says nothing of this socket."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    Notifier({"NOTIFY_SOCKET": systemd_end.getsockname()}).ready()
    assert received(systemd_end) == ["READY=1"]


def test_without_notify_socket_nothing_is_sent(mode: str,
                                               make_notifier: Callable[[dict[str, str]], Notifier],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("sent without $NOTIFY_SOCKET")

    monkeypatch.setattr(socket.socket, "sendto", refuse)
    if mode == "bindings":
        monkeypatch.setattr(sys.modules["systemd.daemon"], "notify", refuse)
    notifier = make_notifier({"WATCHDOG_USEC": "30000000"})
    assert notifier.watchdog_interval is None
    notifier.ready("up")
    notifier.status("up")
    notifier.watchdog()
    notifier.reloading()
    notifier.stopping()


def test_a_dead_socket_is_a_warning(make_notifier: Callable[[dict[str, str]], Notifier],
                                    short_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = make_notifier({"NOTIFY_SOCKET": str(short_dir / "gone")})
    with caplog.at_level(logging.WARNING, logger="plugd.service.systemd"):
        notifier.ready()
    assert "cannot notify systemd" in caplog.text


@pytest.mark.parametrize(("env", "interval"), [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's watchdog
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, None),
    ({}, None),
])
def test_watchdog_interval(env: dict[str, str], interval: float | None) -> None:
    assert Notifier({"NOTIFY_SOCKET": "/run/systemd/notify", **env}).watchdog_interval == interval


def test_only_the_named_pid_pets(make_notifier: Callable[[dict[str, str]], Notifier],
                                 systemd_end: socket.socket) -> None:
    notifier = make_notifier({"NOTIFY_SOCKET": systemd_end.getsockname(),
                              "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
    notifier.watchdog()
    notifier.ready()
    assert received(systemd_end) == ["READY=1"]


# --- socket activation ---------------------------------------------------------

ACTIVATED = r"""
import json, os, socket, sys
if sys.argv[1] == "by-hand":
    sys.modules["systemd"] = sys.modules["systemd.daemon"] = None
# What systemd does between fork and exec: the sockets from fd 3 on, and the variables.
fds = [int(fd) for fd in sys.argv[2:]]
for index, fd in enumerate(fds):
    os.dup2(fd, 3 + index)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES="a:b")

from plugd.service.systemd import listen_socket

sock = listen_socket()
port = sock.getsockname()[1]
with socket.create_connection(("127.0.0.1", port)) as client:
    conn, _ = sock.accept()
    client.sendall(b"hello")
    heard = conn.recv(5).decode()
print(json.dumps({"fd": sock.fileno(), "port": port, "heard": heard,
                  "inheritable": sock.get_inheritable(), "again": listen_socket() is None,
                  "left": sorted(k for k in os.environ if k.startswith("LISTEN_"))}))
"""


def run_activated(mode: str, *socks: socket.socket) -> dict[str, Any]:
    fds = [s.fileno() for s in socks]
    done = subprocess.run([sys.executable, "-c", ACTIVATED, mode, *map(str, fds)], pass_fds=fds,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def test_listen_socket_takes_the_passed_socket(mode: str, listening: socket.socket) -> None:
    child = run_activated(mode, listening)
    assert child == {"fd": 3, "port": listening.getsockname()[1], "heard": "hello",
                     "inheritable": False, "again": True, "left": []}


def test_listen_socket_takes_the_first_listening_tcp_socket(mode: str,
                                                            listening: socket.socket) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        child = run_activated(mode, udp, listening)
    assert (child["fd"], child["port"], child["left"]) == (4, listening.getsockname()[1], [])


def test_not_socket_activated() -> None:
    assert listen_socket({}) is None


def test_socket_passed_to_another_process() -> None:
    """Variables inherited from a parent that systemd activated name its fds, not ours."""
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "http"}
    assert listen_socket(env) is None
    assert env == {}


# --- the journal ---------------------------------------------------------------


@pytest.fixture
def stream(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A stand-in for stderr and the $JOURNAL_STREAM that names it."""
    with open(tmp_path / "stderr", "w") as file:
        stat = os.fstat(file.fileno())
        yield file.fileno(), f"{stat.st_dev}:{stat.st_ino}"


def test_journal_handler_when_stderr_is_the_journal(stream: tuple[int, str]) -> None:
    journal = pytest.importorskip("systemd.journal", reason="systemd-python is not installed")
    fd, value = stream
    handler = journal_handler({"JOURNAL_STREAM": value}, fd)
    assert isinstance(handler, journal.JournalHandler)
    assert handler._extra["SYSLOG_IDENTIFIER"] == "plugd"


@pytest.mark.parametrize("value", ["", "1:2", "nonsense", "1:2:3"])
def test_no_journal_handler_when_stderr_goes_elsewhere(stream: tuple[int, str], value: str) -> None:
    assert journal_handler({"JOURNAL_STREAM": value} if value else {}, stream[0]) is None


def test_no_journal_handler_without_bindings(stream: tuple[int, str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "systemd.journal", None)
    fd, value = stream
    assert journal_handler({"JOURNAL_STREAM": value}, fd) is None


@pytest.fixture
def logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    """A logger of its own, not propagating to pytest's handlers."""
    log = logging.getLogger(f"plugd.test.{request.node.name}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    log.handlers.clear()


def test_journal_fields(stream: tuple[int, str], logger: logging.Logger) -> None:
    """What the handler hands to journal.send(): upper-case plugd_* fields, priorities."""
    pytest.importorskip("systemd.journal", reason="systemd-python is not installed")
    fd, value = stream
    handler = journal_handler({"JOURNAL_STREAM": value}, fd)
    assert handler is not None
    sent: list[tuple[str, dict[str, Any]]] = []
    handler.send = lambda message, /, **fields: sent.append((message, fields))  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.info("relay %s", "on", extra={"plugd_event": "relay", "plugd_node": 123})
    logger.error("sensor gone")
    (message, fields), (_, error) = sent
    assert message == f"{logger.name}: relay on"
    assert (fields["PLUGD_EVENT"], fields["PLUGD_NODE"]) == ("relay", 123)
    assert (fields["PRIORITY"], error["PRIORITY"]) == ("6", "3")
    assert fields["SYSLOG_IDENTIFIER"] == "plugd" and fields["LOGGER"] == logger.name
    assert "PLUGD_EVENT" not in error


def test_journal_fields_filter_alone() -> None:
    record = logging.makeLogRecord({"msg": "x", "plugd_event": "trip", "other": 1})
    assert JournalFields().filter(record)
    assert (record.PLUGD_EVENT, record.plugd_event) == ("trip", "trip")
    assert not hasattr(record, "OTHER")


# --- no log storms ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def collected(logger: logging.Logger, clock: Clock) -> tuple[Collect, RepeatFilter]:
    handler = Collect()
    repeat = RepeatFilter(window=60.0, clock=clock)
    handler.addFilter(repeat)
    logger.addHandler(handler)
    return handler, repeat


def test_repeats_are_counted_and_summed_up(logger: logging.Logger, clock: Clock,
                                           collected: tuple[Collect, RepeatFilter]) -> None:
    handler, _ = collected
    for _ in range(100):
        logger.warning("sensor failed: %s", "no answer", extra={"plugd_event": "fault"})
        clock.now += 0.5
    clock.now += 20  # 70 s after the first
    logger.warning("sensor failed: %s", "no answer")
    assert handler.lines == ["sensor failed: no answer",
                             "sensor failed: no answer (repeated 99 times in the last 70 s)",
                             "sensor failed: no answer"]
    summary = handler.records[1]
    assert (summary.levelno, summary.plugd_repeats, summary.plugd_event) == (logging.WARNING, 99, "fault")


def test_only_identical_messages_are_repeats(logger: logging.Logger, clock: Clock,
                                             collected: tuple[Collect, RepeatFilter]) -> None:
    handler, _ = collected
    other = logging.getLogger(logger.name + ".child")
    logger.info("node %s online", "A")
    logger.info("node %s online", "B")  # the same template, another node: told
    logger.warning("node %s online", "A")  # another level
    other.info("node %s online", "A")  # another logger, propagating to the same handler
    logger.info("node %s online", "A")  # a repeat
    assert handler.lines == ["node A online", "node B online", "node A online", "node A online"]


def test_the_rendered_message_is_what_repeats_not_its_template(
        logger: logging.Logger, clock: Clock, collected: tuple[Collect, RepeatFilter]) -> None:
    handler, repeat = collected
    logger.info("node A online")
    logger.info("node %s online", "A")  # another template, the same words: a repeat
    logger.info("%s online", "node A")
    clock.now += 60
    repeat.flush()
    assert handler.lines == ["node A online", "node A online (repeated 2 times in the last 60 s)"]


def test_a_storm_of_distinct_messages_follows_a_bounded_number(logger: logging.Logger,
                                                               clock: Clock) -> None:
    handler = Collect()
    repeat = RepeatFilter(window=60.0, clock=clock, runs=3)
    handler.addFilter(repeat)
    logger.addHandler(handler)
    logger.info("node 1 online")
    logger.info("node 1 online")
    for node in range(2, 6):
        logger.info("node %d online", node)
    clock.now += 5
    logger.info("node 5 online")  # followed: a repeat, held back
    logger.info("node 2 online")  # no longer followed: told again (and node 3 ends)
    logger.info("node 4 online")  # followed: held back
    assert handler.lines == ["node 1 online", "node 2 online", "node 3 online",
                             "node 1 online (repeated 1 times in the last 0 s)", "node 4 online",
                             "node 5 online", "node 2 online"]
    repeat.flush()
    clock.now += 60
    repeat.flush()
    assert handler.lines[7:] == ["node 4 online (repeated 1 times in the last 65 s)",
                                 "node 5 online (repeated 1 times in the last 65 s)"]


def test_flush_sums_up_without_a_next_record(logger: logging.Logger, clock: Clock,
                                             collected: tuple[Collect, RepeatFilter]) -> None:
    handler, repeat = collected
    logger.error("no answer")
    logger.error("no answer")
    logger.info("once")
    clock.now += 59
    repeat.flush()
    assert handler.lines == ["no answer", "once"]
    clock.now += 1
    repeat.flush()
    repeat.flush()
    assert handler.lines == ["no answer", "once", "no answer (repeated 1 times in the last 60 s)"]
    logger.error("no answer")  # a new window
    assert handler.lines[-1] == "no answer"


def test_summary_reaches_the_journal_as_a_field(stream: tuple[int, str], logger: logging.Logger,
                                                clock: Clock) -> None:
    pytest.importorskip("systemd.journal", reason="systemd-python is not installed")
    fd, value = stream
    handler = journal_handler({"JOURNAL_STREAM": value}, fd)
    assert handler is not None
    sent: list[dict[str, Any]] = []
    handler.send = lambda message, /, **fields: sent.append(fields)  # type: ignore[attr-defined]
    handler.addFilter(RepeatFilter(clock=clock))
    logger.addHandler(handler)
    for _ in range(3):
        logger.warning("flood")
    clock.now += 60
    logger.warning("flood")
    assert [fields.get("PLUGD_REPEATS") for fields in sent] == [None, 2, None]


# --- the unit: open files and the configuration's group ----------------------------

SYSUSERS = SERVICE.parent.parent / "packaging" / "deb" / "sysusers.conf"


def unit_values(name: str) -> list[str]:
    return [value for setting, value in settings(SERVICE) if setting == name]


def test_unit_limits_open_files_well_above_the_connections() -> None:
    """One number, the soft and the hard limit alike, with room beyond every connection the
    daemon lets in for its state files, the journal and the mesh."""
    values = unit_values("LimitNOFILE")
    assert len(values) == 1 and values[0].isdigit(), values
    limit = int(values[0])
    assert limit == 4096
    assert HttpConfig().max_connections * 4 <= limit


def test_unit_reads_the_configuration_through_the_plugd_group() -> None:
    """/etc/plugd/plugd.toml is root:plugd 0640: the dynamic user reads it, on a reload too,
    only as a member of the group the Debian package makes."""
    made = [line.split() for line in SYSUSERS.read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert made == [["g", "plugd", "-"]]
    groups = [group for value in unit_values("SupplementaryGroups") for group in value.split()]
    assert sorted(groups) == ["gpio", "i2c", "plugd"]
    assert unit_values("DynamicUser") == ["yes"] and unit_values("User") == []
    assert unit_values("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert unit_values("ConfigurationDirectory") == ["plugd"]


def verify(directory: Path, change: tuple[str, str] | None = None) -> tuple[int, str]:
    """systemd-analyze verify on the units as they are (or with one line changed), ExecStart=
    naming a stub, since /usr/bin/plugd is only there once the package is installed."""
    stub = directory / "plugd"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    text = SERVICE.read_text().replace(EXEC_START, f"ExecStart={stub} ")
    if change:
        assert text.count(change[0] + "\n") == 1, change
        text = text.replace(change[0] + "\n", change[1] + "\n")
    (directory / SERVICE.name).write_text(text)
    (directory / SOCKET.name).write_text(SOCKET.read_text())
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", "--recursive-errors=no",
                           str(directory / SERVICE.name), str(directory / SOCKET.name)],
                          capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


@needs_analyze
def test_unit_verifies_with_its_limit_and_groups(tmp_path: Path) -> None:
    """Clean as it is; and verify does read both lines: a bad value in either is named."""
    assert verify(tmp_path) == (0, "")
    for good, bad, complaint in [
            ("LimitNOFILE=4096", "LimitNOFILE=lots", "Failed to parse resource value"),
            ("SupplementaryGroups=gpio i2c plugd", "SupplementaryGroups=gpio i2c plu:gd",
             "Invalid user/group name")]:
        code, said = verify(tmp_path, (good, bad))
        assert complaint in said, (code, said)
