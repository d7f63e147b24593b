"""What the tests and the benchmarks share: free ports, waiting on a condition, a plugd process.

One copy of each, so a fix to how the suite waits or starts a daemon reaches every test.
Waiting polls a condition and fails with the last value it saw; the time limits only turn a
hang into a failure and say nothing about speed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Where the virtualenv's `plugd` and `plugctl` are.
BIN = Path(sys.executable).parent
#: How long a daemon may take to start, or a condition to come true, before the test fails.
START_TIMEOUT = 30.0
POLL = 0.05


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


class Heard:
    """Every datagram on a mesh port, heard by a thread beside the daemon, with its monotonic
    arrival time; `node_id` keeps only that node's."""

    def __init__(self, port: int, node_id: int | None = None) -> None:
        self.sock = listener(port, timeout=0.2)
        self._prefix = b"" if node_id is None else f"{node_id}:".encode()
        self.datagrams: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recvfrom(2048)[0]
            except TimeoutError:
                continue
            if data.startswith(self._prefix):
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
        """Stop listening."""
        self._stop.set()
        self._thread.join()
        self.sock.close()


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
    """`wait_for` on the event loop: polls without blocking the daemon under test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := check()):
        if loop.time() > deadline:
            raise _timed_out(what, result)
        await asyncio.sleep(POLL)
    return result


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


def toml(tables: dict[str, dict[str, Any]]) -> str:
    """A configuration file from {table: {key: value}} (values as JSON, which TOML reads)."""
    return "".join(f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n"
                                           for key, value in keys.items()) + "\n"
                   for name, keys in tables.items())


class PlugdProcess:
    """A `plugd --simulate` process on loopback ports of its own, as a person runs it.

    `restart()` keeps its ports and state directory; `config` tables go to a file of its own.
    """

    def __init__(self, tmp: Path, *extra: str, node_id: int = 4242, name: str | None = "TestPlug",
                 config: dict[str, dict[str, Any]] | None = None, udp_port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.http = free_port(socket.SOCK_STREAM)
        self.udp = udp_port or free_port()
        self.node_id = node_id
        self.state = tmp / f"state-{node_id}"
        self.log = tmp / f"plugd-{node_id}.log"
        self.env = env
        self.args = [str(BIN / "plugd"), "--simulate", "--http-port", str(self.http),
                     "--udp-port", str(self.udp), "--state-dir", str(self.state),
                     "--broadcast", "127.255.255.255", "--node-id", str(node_id),
                     *(["--node-name", name] if name else []), *extra]
        if config:
            path = tmp / f"plugd-{node_id}.toml"
            path.write_text(toml(config))
            self.args += ["--config", str(path)]
        self.proc: subprocess.Popen[bytes] | None = None
        self._password: str | None = None
        self.start()

    @property
    def url(self) -> str:
        """The page's address."""
        return f"http://127.0.0.1:{self.http}/"

    @property
    def password(self) -> str:
        """The password to log in with: the initial one plugd made, until a test changes it."""
        if self._password is None:
            self._password = wait_for(self._initial_password, "the initial password file")
        return self._password

    @password.setter
    def password(self, password: str) -> None:
        self._password = password

    def _initial_password(self) -> str | None:
        try:
            return (self.state / "initial-password").read_text().strip() or None
        except OSError:
            return None

    def start(self) -> None:
        """Start it and wait until its page answers (or it died: the log says why)."""
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=log,
                                         env=self.env)
        proc = self.proc

        def listening() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"plugd did not start:\n{self.tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.http), timeout=1).close()
            except OSError:
                return False
            return True
        wait_for(listening, f"plugd to listen on {self.http}")

    def stop(self) -> int | None:
        """SIGTERM; its exit code, or None if it had to be killed."""
        return None if self.proc is None else stop_process(self.proc)

    def restart(self) -> None:
        """Stop and start again, same ports and state."""
        self.stop()
        self.start()

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run plugctl against it, with its token."""
        return subprocess.run([str(BIN / "plugctl"), "--port", str(self.http), "--token-file",
                               str(self.state / "cli-token"), *args],
                              capture_output=True, text=True, timeout=30)

    def ask(self, *args: str) -> dict[str, Any]:
        """plugctl's JSON answer; a failure fails the test."""
        done = self.ctl("--json", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    def status(self) -> dict[str, Any]:
        """`plugctl status` as JSON."""
        return self.ask("status")

    def send_udp(self, payload: bytes) -> None:
        """A datagram as an ESP node sends it, to loopback only."""
        send_udp(self.udp, payload)

    def tail(self, lines: int = 40) -> str:
        """The end of its log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
