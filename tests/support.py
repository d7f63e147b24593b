"""What the tests and the benchmarks share: free ports, waiting on a condition, WebSocket
clients, an in-process daemon and a `plugd --simulate` process.

One copy of each, so a fix to how the suite waits or starts a daemon reaches every test.
Waiting polls a condition and fails with the last value it saw; the time limits only turn a
hang into a failure and say nothing about speed. A plugd process counts as started when it
says READY=1 on its notify socket, as systemd sees it, not when a port happens to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory
from websockets.asyncio.client import ClientConnection, connect
from websockets.sync.client import ClientConnection as SyncConnection
from websockets.sync.client import connect as sync_connect

from plugd.service.config import Config, parse
from plugd.service.daemon import Daemon

#: Where the virtualenv's `plugd` and `plugctl` are.
BIN = Path(sys.executable).parent
#: How long a daemon may take to start, or a condition to come true, before the test fails.
START_TIMEOUT = 30.0
#: How long an answer to a request may take before the test fails instead of hanging.
ANSWER_TIMEOUT = 30.0
POLL = 0.05
#: At most this many datagrams that arrived before a recorder was closed are still recorded.
DRAIN_AT_MOST = 10_000
#: The node id the tests' daemons go by.
NODE_ID = 4242
#: What the daemon sends unasked; a request's answer is the first other message.
PUSHES = ("thing_update", "node_update", "event")

#: A configuration file as {table: {key: value}}.
Tables = Mapping[str, Mapping[str, Any]]


# --- ports and datagrams ------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port nobody holds on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send_udp(port: int, data: bytes) -> None:
    """A datagram to a daemon on loopback, from an unbound socket (never one bound to its port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, ("127.0.0.1", port))


def listener(port: int, timeout: float = 15.0) -> socket.socket:
    """A socket on the mesh port beside the daemons (SO_REUSEADDR): hears the loopback
    broadcasts, as a node on the LAN or a capturing attacker would."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    sock.settimeout(timeout)
    return sock


class Recorder:
    """Every datagram a socket receives, read by a thread of its own with its monotonic
    arrival time, so a test asserts on a history instead of timing its own reads."""

    def __init__(self, sock: socket.socket,
                 into: list[tuple[float, bytes]] | None = None) -> None:
        self.sock = sock
        self.sock.settimeout(0.2)
        #: (monotonic arrival time, datagram), oldest first.
        self.datagrams: list[tuple[float, bytes]] = [] if into is None else into
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def keep(self, data: bytes) -> bool:
        """Whether a datagram is recorded (all are, unless a subclass says otherwise)."""
        return True

    def _listen(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self._take(self.sock.recv(65536))
        self.sock.setblocking(False)  # what arrived before close() is still recorded
        with contextlib.suppress(BlockingIOError):
            for _ in range(DRAIN_AT_MOST):
                self._take(self.sock.recv(65536))

    def _take(self, data: bytes) -> None:
        if self.keep(data):
            self.datagrams.append((time.monotonic(), data))

    @property
    def heard(self) -> list[bytes]:
        """The datagrams, oldest first."""
        return [data for _, data in self.datagrams]

    @property
    def times(self) -> list[float]:
        """When each arrived (monotonic)."""
        return [t for t, _ in self.datagrams]

    def since(self, t: float) -> int:
        """How many arrived after monotonic time `t`."""
        return sum(1 for x in self.times if x > t)

    def close(self) -> None:
        """Stop listening, once what had arrived is recorded."""
        self._stop.set()
        self._thread.join()
        self.sock.close()


class Heard(Recorder):
    """Every datagram on a mesh port, heard beside the daemon; `node_id` keeps only that node's."""

    def __init__(self, port: int, node_id: int | None = None) -> None:
        self._prefix = b"" if node_id is None else f"{node_id}:".encode()
        super().__init__(listener(port))

    def keep(self, data: bytes) -> bool:
        """Only the chosen node's datagrams of values: a plugd's rarer names datagram (fields
        `&n<id>:`, see plugd.core.wire.NAMES_PREFIX; no value field holds `&n`) is not one."""
        return data.startswith(self._prefix) and b"&n" not in data


# --- waiting -----------------------------------------------------------------------------


def _timed_out(what: str, seen: Any) -> AssertionError:
    return AssertionError(f"timed out waiting for {what}; last seen: {seen!r}")


def wait_for(check: Callable[[], Any], what: str, timeout: float = START_TIMEOUT) -> Any:
    """Poll `check` until it gives something true, and return that (off any event loop)."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise _timed_out(what, result)
        time.sleep(POLL)
    return result


async def until(check: Callable[[], Any], what: str, timeout: float = START_TIMEOUT) -> Any:
    """`wait_for` on the event loop: polls without blocking the daemon under test; `check`
    may be a coroutine function (it is awaited each time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise _timed_out(what, result)
        await asyncio.sleep(POLL)


# --- WebSocket clients ---------------------------------------------------------------------


class Client:
    """A WebSocket client that sends a request and waits for its answer, keeping the pushes
    it reads on the way in `pushed`. Waiting for one message takes at most `timeout` in all,
    however many other messages arrive meanwhile."""

    def __init__(self, ws: ClientConnection, timeout: float = ANSWER_TIMEOUT) -> None:
        self.ws = ws
        self.timeout = timeout
        self.pushed: list[dict[str, Any]] = []

    async def _until(self, wanted: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """The first message read that is `wanted`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        seen: dict[str, Any] | None = None
        while True:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise _timed_out(what, seen) from None
            seen = json.loads(raw)
            assert seen is not None
            if wanted(seen):
                return seen

    async def ask(self, request: dict[str, Any] | str, answer: str | None = None) -> dict[str, Any]:
        """Send `request`; its answer (the first message that is no push, or the first
        named `answer`, or an error)."""
        await self.ws.send(request if isinstance(request, str) else json.dumps(request))

        def answers(message: dict[str, Any]) -> bool:
            if message["command"] in PUSHES:
                self.pushed.append(message)
                return False
            return answer is None or message["command"] in (answer, "error")
        return await self._until(answers, f"the answer to {request!r:.80}")

    async def next_push(self, command: str,
                        match: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """The next pushed message named `command` (and for which `match` is true)."""
        return await self._until(
            lambda m: m["command"] == command and (match is None or match(m)), f"a {command} push")

    async def close(self) -> None:
        """Close the connection."""
        await self.ws.close()


class SyncClient:
    """`Client` for code off any event loop (Playwright's tests, the namespace mesh)."""

    def __init__(self, ws: SyncConnection, timeout: float = ANSWER_TIMEOUT) -> None:
        self.ws = ws
        self.timeout = timeout

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send `request`; its answer, the pushes on the way skipped (all within `timeout`)."""
        self.ws.send(json.dumps(request))
        deadline = time.monotonic() + self.timeout
        seen = None
        while True:
            try:
                seen = json.loads(self.ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                raise _timed_out(f"the answer to {request!r:.80}", seen) from None
            if seen["command"] not in PUSHES:
                answer: dict[str, Any] = seen
                return answer


@contextlib.contextmanager
def session(port: int, token: str | None = None, sock: socket.socket | None = None,
            timeout: float = ANSWER_TIMEOUT) -> Iterator[SyncClient]:
    """A WebSocket session with the daemon on `port` of 127.0.0.1 (over `sock` if given, one
    opened in another network namespace), logged in with `token` if given."""
    with sync_connect(f"ws://127.0.0.1:{port}/ws", sock=sock, open_timeout=timeout,
                      close_timeout=1) as ws:
        client = SyncClient(ws, timeout)
        if token is not None:
            answer = client.ask({"command": "login", "token": token})
            assert answer.get("success"), f"login with the token refused: {answer}"
        yield client


# --- a daemon in this process ----------------------------------------------------------------


def sim_config(state_dir: Path, **overrides: Any) -> Config:
    """A simulated plug on loopback with ports of its own (http.port 0: the kernel picks)."""
    values = {"state.dir": str(state_dir), "http.port": 0, "http.bind": "127.0.0.1",
              "mesh.udp_port": free_port(), "mesh.broadcast": ["127.255.255.255"],
              "node.id": NODE_ID, "node.name": "TestPlug", "mdns.enabled": False}
    values.update(overrides)
    return parse("", values, simulate=True)


@contextlib.asynccontextmanager
async def running_daemon(config: Config, pins: MockFactory, **kwargs: Any) -> AsyncIterator[Daemon]:
    """A started `Daemon` on this event loop, on `pins`, stopped on the way out."""
    daemon = Daemon(config, pin_factory=pins, **kwargs)
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()


# --- a plugd process ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def light_node(tmp_path: Path, factory: MockFactory, name: str, node_id: int, port: int,
                     **overrides: Any) -> AsyncIterator[Daemon]:
    """A light simulated daemon (no meter, no display) named `name` on a shared mesh port:
    several of them make a mesh on loopback."""
    config = sim_config(tmp_path / name, **{
        "node.id": node_id, "node.name": name, "mesh.udp_port": port, "mesh.interval": 0.5,
        "adc.enabled": False, "display.enabled": False, **overrides})
    daemon = Daemon(config, pin_factory=factory)
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> int | None:
    """SIGTERM, as systemd stops plugd; the exit code, or None if it had to be killed."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def merged(*layers: Tables | None) -> dict[str, dict[str, Any]]:
    """Configuration tables laid over one another, key by key (a None value drops the key)."""
    tables: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for name, keys in (layer or {}).items():
            tables.setdefault(name, {}).update(keys)
    return {name: {k: v for k, v in keys.items() if v is not None} for name, keys in tables.items()}


def toml(tables: Tables) -> str:
    """A configuration file from {table: {key: value}} (values as JSON, which TOML reads)."""
    return "".join(f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n"
                                           for key, value in keys.items()) + "\n"
                   for name, keys in tables.items())


class PlugdProcess:
    """A `plugd --simulate` process, as a person or systemd runs it, on ports of its own.

    Its whole configuration is in a file of its own: loopback ports, a state directory under
    `tmp`, no mDNS, and `config`'s tables laid over that. `prefix` wraps the command (to run
    it in a network namespace), `program` runs another plugd (an unpacked package's).
    `notices` records what it tells systemd; `restart()` keeps its ports and state.
    """

    def __init__(self, tmp: Path, *extra: str, node_id: int | None = NODE_ID,
                 name: str | None = "TestPlug", config: Tables | None = None,
                 udp_port: int | None = None, http_port: int | None = None,
                 env: Mapping[str, str] | None = None, prefix: Sequence[str] = (),
                 program: Path | None = None, key: str | None = None, start: bool = True) -> None:
        self.key = key or str(node_id)
        self.tables = merged({
            "node": {"id": node_id, "name": name},
            "http": {"port": http_port or free_port(socket.SOCK_STREAM), "bind": "127.0.0.1"},
            "mesh": {"udp_port": udp_port or free_port(), "broadcast": ["127.255.255.255"]},
            "state": {"dir": str(tmp / f"state-{self.key}")},
            "mdns": {"enabled": False},
        }, config)
        self.http: int = self.tables["http"]["port"]
        self.udp: int = self.tables["mesh"]["udp_port"]
        self.state = Path(self.tables["state"]["dir"])
        self.config_file = tmp / f"plugd-{self.key}.toml"
        self.config_file.write_text(toml(self.tables))
        self.log = tmp / f"plugd-{self.key}.log"
        self.env = env
        self.args = [*prefix, str(program or BIN / "plugd"), "--simulate",
                     "--config", str(self.config_file), *extra]
        #: (monotonic arrival time, message) of every notification, over every start.
        self.notices: list[tuple[float, bytes]] = []
        self.proc: subprocess.Popen[bytes] | None = None
        #: When the last start was asked for, and when that start said READY=1 (monotonic).
        self.spawned_at = self.ready_at = 0.0
        self._notify: Recorder | None = None
        self._notify_path = Path()
        self._mark = 0
        self._starts = 0
        self._password: str | None = None
        if start:
            self.start()

    @property
    def url(self) -> str:
        """The page's address."""
        return f"http://127.0.0.1:{self.http}/"

    @property
    def token(self) -> str:
        """The token plugctl logs in with."""
        return (self.state / "cli-token").read_text().strip()

    @property
    def password(self) -> str:
        """The password to log in with: the initial one plugd made, until a test changes it."""
        if self._password is None:
            self._password = (self.state / "initial-password").read_text().strip()
        return self._password

    @password.setter
    def password(self, password: str) -> None:
        self._password = password

    def configure(self, tables: Tables) -> None:
        """Lay `tables` over the configuration file (a SIGHUP makes plugd read it)."""
        self.tables = merged(self.tables, tables)
        self.config_file.write_text(toml(self.tables))

    def spawn(self) -> None:
        """Start the process; `ready()` waits for it."""
        assert self.proc is None or self.proc.poll() is not None, "plugd is running already"
        self._starts += 1
        path = Path(tempfile.gettempdir()) / f"plugd-notify-{os.getpid()}-{id(self)}-{self._starts}"
        path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        self._notify, self._notify_path = Recorder(sock, self.notices), path
        env = {**os.environ, **(self.env or {}), "NOTIFY_SOCKET": str(path)}
        env.pop("JOURNAL_STREAM", None)  # its log goes to self.log, never to a journal
        self._mark = len(self.notices)
        self.spawned_at = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log, env=env)

    def ready(self) -> None:
        """Wait until the process says READY=1 (it dying first fails, with its log)."""
        proc, mark = self.proc, self._mark
        assert proc is not None

        def said_ready() -> float | None:
            for at, message in self.notices[mark:]:
                if b"READY=1" in message.split(b"\n"):
                    return at
            if proc.poll() is not None:
                raise AssertionError(f"plugd exited with {proc.returncode} before it was ready; "
                                     f"its log:\n{self.tail()}")
            return None
        self.ready_at = wait_for(said_ready, f"plugd {self.key} to say READY=1")

    def start(self) -> None:
        """Start the process and wait until it is ready."""
        self.spawn()
        self.ready()

    def said(self, text: str) -> list[float]:
        """When the process told systemd `text` (e.g. "WATCHDOG=1"), oldest first."""
        wanted = text.encode()
        return [at for at, message in self.notices if wanted in message.split(b"\n")]

    def kill(self) -> None:
        """SIGKILL: no handler runs, no file is flushed, as when the power is cut."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()

    def wait(self, timeout: float = START_TIMEOUT) -> int:
        """Wait for the process to end; its exit code."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self._ended()
        return code

    def stop(self) -> int | None:
        """SIGTERM; its exit code, or None if it had to be killed."""
        if self.proc is None:
            return None
        code = stop_process(self.proc)
        self._ended()
        return code

    def restart(self) -> None:
        """Stop and start again, same ports and state."""
        self.stop()
        self.start()

    def _ended(self) -> None:
        if self._notify is not None:
            self._notify.close()  # after the process: its last words are recorded
            self._notify_path.unlink(missing_ok=True)
            self._notify = None

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run plugctl against it, with its token."""
        return subprocess.run([str(BIN / "plugctl"), "--port", str(self.http), "--token-file",
                               str(self.state / "cli-token"), *args],
                              capture_output=True, text=True, timeout=30)

    def ask(self, *args: str) -> dict[str, Any]:
        """plugctl's JSON answer; a failure fails the test."""
        done = self.ctl("--json", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def status(self) -> dict[str, Any]:
        """`plugctl status` as JSON."""
        return self.ask("status")

    def session(self, login: bool = True) -> contextlib.AbstractContextManager[SyncClient]:
        """A WebSocket session off any event loop, logged in with the token unless `login` is
        false."""
        return session(self.http, self.token if login else None)

    async def client(self) -> Client:
        """A WebSocket client on this event loop, logged in with the token, as plugctl does."""
        ws = await connect(f"ws://127.0.0.1:{self.http}/ws", open_timeout=START_TIMEOUT,
                           max_size=None)
        client = Client(ws)
        answer = await client.ask({"command": "login", "token": self.token})
        if not answer.get("success"):
            await ws.close()
            raise AssertionError(f"login refused: {answer}")
        return client

    def send_udp(self, payload: bytes) -> None:
        """A datagram as an ESP node sends it, to loopback only."""
        send_udp(self.udp, payload)

    def tail(self, lines: int = 40) -> str:
        """The end of its log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
