"""A real MQTT broker for the tests: Debian's mosquitto, on a free port of its own, with its
own configuration, password file and certificates under the test's temporary directory.

No broker of the machine is touched: each `Broker` is a process of the test's, listening on
127.0.0.1 at a port the kernel just gave out, and its configuration names nothing outside the
test's directory (the Debian package's own service, if it runs, listens elsewhere and is never
contacted). `Watcher` is a plain MQTT client (aiomqtt) that records every message it reads, so
a test waits for a message instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from tests.support import START_TIMEOUT, free_port, until, wait_for

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def have_mosquitto() -> bool:
    """Whether Debian's mosquitto (and mosquitto_passwd) are installed."""
    return Path(MOSQUITTO).is_file() and Path(MOSQUITTO_PASSWD).is_file()


@dataclass(frozen=True)
class Certificates:
    """A certificate authority made for one test, and a server certificate it signed for
    127.0.0.1 and localhost."""

    ca: Path
    cert: Path
    key: Path


def make_ca(directory: Path) -> Certificates:
    """A fresh CA and server certificate (P-256 keys, a day long), with the openssl tool."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (directory / n for n in
                                  ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([OPENSSL, *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "1",
        "-subj", "/CN=plugd test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    extensions = directory / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                          "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(extensions))
    return Certificates(ca, cert, key)


class Broker:
    """A mosquitto process on 127.0.0.1:`port`; `users` turns anonymous access off and makes a
    password file with mosquitto_passwd; `tls` serves TLS with the test CA's certificate.
    Without persistence: a restart forgets every retained message, so what is retained after
    one was published again."""

    def __init__(self, directory: Path, *, port: int | None = None,
                 users: Mapping[str, str] | None = None, tls: Certificates | None = None,
                 bind: str = "127.0.0.1") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port(socket.SOCK_STREAM)
        self.tls = tls
        self.log = directory / f"mosquitto-{self.port}.log"
        # `bind` "": every address of its network namespace (one the test made, see tests/mesh).
        lines = [f"listener {self.port} {bind}".rstrip(), "persistence false",
                 f"log_dest file {self.log}", "log_type error", "log_type warning",
                 "log_type notice", "log_type information", "connection_messages true"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to the `mosquitto` user, who cannot read tmp
        if users:
            passwords = directory / "passwords"
            passwords.touch(mode=0o600)
            for user, password in users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwords), user, password],
                               check=True, capture_output=True, timeout=30)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if tls is not None:
            lines += [f"certfile {tls.cert}", f"keyfile {tls.key}"]
        self.config = directory / f"mosquitto-{self.port}.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until its port takes connections."""
        assert self.proc is None or self.proc.poll() is not None, "the broker runs already"
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited with {self.proc.returncode}: {self.tail()}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0
        wait_for(listening, f"mosquitto to listen on {self.port}")

    def stop(self) -> None:
        """SIGTERM, and wait for it to end."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, lines: int = 20) -> str:
        """The end of its log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def context(self) -> ssl.SSLContext | None:
        """A client's TLS context trusting the test CA (None without TLS)."""
        if self.tls is None:
            return None
        return ssl.create_default_context(cafile=str(self.tls.ca))


@dataclass(frozen=True)
class Seen:
    """One message a watcher read."""

    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        """The payload as text."""
        return self.payload.decode()


class Watcher:
    """A plain MQTT client that subscribes to topics and keeps every message it reads."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.seen: list[Seen] = []

    async def _read(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            data = payload if isinstance(payload, bytes) else str(payload or "").encode()
            self.seen.append(Seen(message.topic.value, data, bool(message.retain)))

    def mark(self) -> int:
        """Where the messages read from now on begin (for `wait(..., since=)`)."""
        return len(self.seen)

    def last(self, topic: str) -> Seen | None:
        """The latest message on `topic`, if any."""
        return next((m for m in reversed(self.seen) if m.topic == topic), None)

    def on(self, pattern: str) -> list[Seen]:
        """The messages whose topic matches the regular expression `pattern`, oldest first."""
        return [m for m in self.seen if re.fullmatch(pattern, m.topic)]

    async def wait(self, topic: str, match: Callable[[Seen], bool] | None = None,
                   since: int = 0) -> Seen:
        """The first message on `topic` (from `since` on) for which `match` holds."""
        def found() -> Seen | None:
            return next((m for m in self.seen[since:]
                         if m.topic == topic and (match is None or match(m))), None)
        result: Seen = await until(found, f"a message on {topic}")
        return result

    async def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        """Publish as another client would (QoS 1)."""
        await self.client.publish(topic, payload, qos=1, retain=retain)


@contextlib.asynccontextmanager
async def watching(broker: Broker, *topics: str, username: str | None = None,
                   password: str | None = None, **options: Any) -> AsyncIterator[Watcher]:
    """A `Watcher` connected to `broker`, subscribed to `topics` (each at QoS 1)."""
    async with aiomqtt.Client("127.0.0.1", broker.port, username=username, password=password,
                              tls_context=broker.context(), **options) as client:
        watcher = Watcher(client)
        reader = asyncio.create_task(watcher._read())
        try:
            if topics:
                await client.subscribe([(t, 1) for t in topics])
            yield watcher
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await reader
