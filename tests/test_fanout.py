"""Pushes to many pages: framed once, written to every page in order, before the answer."""

from __future__ import annotations

import asyncio
import json

from conftest import Client
from websockets.asyncio.client import connect

from plugd.doors import web
from plugd.service.daemon import Daemon
from tests.support import ANSWER_TIMEOUT


def url(d: Daemon) -> str:
    return f"ws://127.0.0.1:{d.web.port}/ws"


def test_a_frame_is_the_unmasked_text_frame_a_server_sends():
    text = json.dumps({"command": "thing_update", "value": 1.0})
    frame = web.text_frame(text)
    assert frame[0] == 0x81 and frame[1] == len(text) and frame[2:] == text.encode()
    long = "x" * 300
    assert web.text_frame(long)[:4] == bytes([0x81, 126, 1, 44])


async def relay_changes(ws, wanted: list[float]) -> None:
    """Read a page until the relay's values, repeats (the interval's pushes) folded, end in
    `wanted`; a lost or reordered push never gets there, and the timeout says so."""
    seen: list[float] = []
    while seen[-len(wanted):] != wanted:
        message = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT))
        relay = message["command"] == "thing_update" and message["thingId"] == 1
        if relay and (not seen or seen[-1] != message["value"]):
            seen.append(message["value"])


async def test_every_page_reads_each_switch_in_order_and_its_own_push_before_its_answer(
        daemon: Daemon, client: Client):
    async with connect(url(daemon)) as first, connect(url(daemon)) as second:
        await client.ask({"command": "request_status"})
        wanted = [1.0, 0.0] * 5
        for value in wanted:
            await client.ws.send(json.dumps({"command": "switch",
                                             "state": "on" if value else "off"}))
            pushed = False
            while True:
                message = json.loads(await asyncio.wait_for(client.ws.recv(), ANSWER_TIMEOUT))
                if message["command"] == "thing_update" and message["thingId"] == 1:
                    pushed = message["value"] == value
                elif message["command"] in ("response_switch", "error"):
                    break
            assert pushed, "the switch was answered before its page had the new value"
        await relay_changes(first, wanted)
        await relay_changes(second, wanted)
