"""Bare broadcasters: the fan-out benchmark's baselines, from the libraries plugd is built on.

Each is a WebSocket server that does nothing but what a relay change makes plugd
do for its pages: when a client sends `{"command": "switch", "state": "on"}` it
encodes one `thing_update`, shaped and sized like plugd's, sends it to every
client, and answers the switch. No login, no state, no files, no metering: what
plugd takes beyond these is its own cost.

- `websockets`: the `websockets` asyncio server and its `broadcast()`.
- `starlette`: uvicorn with the same sans-I/O WebSocket protocol plugd uses and a
  Starlette route, sending with `await websocket.send_text()` to each client in turn.

    python -m bench.bare websockets|starlette PORT

prints `ready` on stdout once it listens on 127.0.0.1:PORT, and stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from typing import Any

KINDS = ("websockets", "starlette")


def update(on: bool) -> str:
    """The push a relay change makes, with the fields (and so the size) of plugd's."""
    return json.dumps({"command": "thing_update", "nodeId": 1, "nodeName": "TestPlug",
                       "thingId": 1, "thingName": "Relay", "lastUpdate": int(time.time()),
                       "value": 1.0 if on else 0.0, "valid": True, "autoOffAt": None})


def answer(request: str) -> tuple[str | None, str]:
    """For a client's frame: the push to broadcast (None if it asked no switch) and the answer."""
    try:
        state = json.loads(request).get("state")
    except (ValueError, AttributeError):
        state = None
    if state not in ("on", "off"):
        return None, json.dumps({"command": "error", "message": "switch on or off only"})
    on = state == "on"
    return update(on), json.dumps({"command": "response_switch", "success": True, "relay": on})


async def serve_websockets(port: int, stopped: asyncio.Event) -> None:
    """The `websockets` server: broadcast() to every connection."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        try:
            async for request in ws:
                push, reply = answer(str(request))
                if push is not None:
                    broadcast(clients, push)
                await ws.send(reply)
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=1):
        print("ready", flush=True)
        await stopped.wait()


async def serve_starlette(port: int, stopped: asyncio.Event) -> None:
    """uvicorn (its `websockets` sans-I/O protocol) and a Starlette route: send to each in turn."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    clients: set[WebSocket] = set()

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        clients.add(ws)
        try:
            while True:
                push, reply = answer(await ws.receive_text())
                if push is not None:
                    for client in list(clients):
                        try:
                            await client.send_text(push)
                        except (WebSocketDisconnect, OSError, RuntimeError):
                            clients.discard(client)
                await ws.send_text(reply)
        except WebSocketDisconnect:
            pass
        finally:
            clients.discard(ws)

    config = uvicorn.Config(Starlette(routes=[WebSocketRoute("/ws", endpoint)]),
                            host="127.0.0.1", port=port, ws="websockets-sansio", lifespan="off",
                            log_level="warning", ws_per_message_deflate=False, ws_max_queue=1,
                            backlog=2048)
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)  # as Server.serve() would, without signals
    await server.startup()
    print("ready", flush=True)
    await stopped.wait()
    server.should_exit = True
    await server.shutdown()


async def main(kind: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    serve: Any = serve_websockets if kind == "websockets" else serve_starlette
    await serve(port, stopped)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in KINDS or not sys.argv[2].isdigit():
        sys.exit(f"usage: python -m bench.bare {'|'.join(KINDS)} PORT")
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
