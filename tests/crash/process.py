"""A `plugd --simulate` process on loopback ports of its own, and a logged-in client of it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.support import free_port

#: What the daemon sends unasked; a request's answer is the first other message.
PUSHES = ("thing_update", "node_update", "event")
START_TIMEOUT = 30.0


def write_config(path: Path, **meter: float) -> Path:
    """Everything on loopback, no mDNS; `meter` keys (e.g. flush_interval) go to [meter]."""
    lines = ['[http]', 'bind = "127.0.0.1"', '[mesh]', 'bind = "127.0.0.1"',
             'broadcast = ["127.255.255.255"]', '[mdns]', 'enabled = false']
    if meter:
        lines += ["[meter]", *(f"{key} = {value!r}" for key, value in meter.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


class Plugd:
    """One plugd process; every start takes fresh ports, the state directory stays."""

    def __init__(self, state: Path, config: Path, log: Path, node_id: int = 4242,
                 command: list[str] | None = None) -> None:
        self.state = state
        self.config = config
        self.log = log
        self.node_id = node_id
        #: What runs plugd (a prefix such as `unshare -m ...` may wrap it).
        self.command = command or [sys.executable, "-m", "plugd"]
        self.proc: asyncio.subprocess.Process | None = None
        self.http = 0

    async def start(self) -> None:
        self.http = free_port(socket.SOCK_STREAM)
        args = [*self.command, "--simulate", "--config", str(self.config),
                "--http-port", str(self.http), "--udp-port", str(free_port()),
                "--state-dir", str(self.state), "--node-id", str(self.node_id)]
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=log)
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.http)
            except OSError:
                if self.proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"plugd did not start; its log:\n{self.tail()}") from None
                await asyncio.sleep(0.02)
            else:
                writer.close()
                return

    def kill(self) -> None:
        """SIGKILL: no handler runs, no file is flushed, as when the process is killed or dies."""
        assert self.proc is not None
        if self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    async def wait(self) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), START_TIMEOUT)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), START_TIMEOUT)
            except TimeoutError:
                self.kill()
                await self.proc.wait()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def client(self) -> Client:
        """A WebSocket client logged in with the token file, as plugctl does."""
        ws = await connect(f"ws://127.0.0.1:{self.http}/ws", open_timeout=START_TIMEOUT,
                           max_size=None)
        client = Client(ws)
        token = (self.state / "cli-token").read_text().strip()
        answer = await client.ask({"command": "login", "token": token})
        if not answer.get("success"):
            await ws.close()
            raise AssertionError(f"login refused: {answer}")
        return client


class Client:
    """Sends a request and waits for its answer, skipping pushes."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.ws.send(json.dumps(request))
        while True:
            message = json.loads(await self.ws.recv())
            if message["command"] not in PUSHES:
                return message

    async def close(self) -> None:
        await self.ws.close()
