"""Handing the relay back to its recipes over the WebSocket API, in-process (no namespaces).

The namespace mesh drives this path from another node's value; here the source is a datagram
sent on loopback, so it runs without root.
"""

from plugd.core.model import ThingId
from tests.support import send_udp

SOURCE = 777
RECIPE = {"id": 1, "name": "follow 777", "sourceNodeId": SOURCE, "sourceThingId": 1, "relation": 0,
          "targetValue": 1, "localThingId": 1, "localValue": 1}


async def test_override_off_without_a_value_lets_the_recipes_decide(client, daemon, factory):
    assert (await client.ask({"command": "save_recipe", "recipe": RECIPE}))["success"]
    send_udp(daemon.config.mesh.udp_port, f"{SOURCE}:Other&1:1.00".encode())
    await client.next_push("thing_update", lambda m: m["thingId"] == ThingId.PLUG and m["value"] == 1)
    assert factory.pin(17).state is True
    await client.ask({"command": "save_thing", "thing": {"id": 1, "override": True}})
    await client.ask({"command": "switch", "state": "off"})
    assert factory.pin(17).state is False

    answer = await client.ask({"command": "save_thing", "thing": {"id": 1, "override": False}})

    # The recipe matches on the value last seen, so the relay is on again, and stays on.
    assert answer["thing"]["value"] == 1 and not answer["thing"]["override"]
    assert factory.pin(17).state is True
    assert daemon.plug.things[ThingId.PLUG].value == 1


async def test_override_off_with_the_value_shown_still_lets_the_recipes_decide(client, daemon, factory):
    """The firmware's page sends the whole thing back, the value it shows included."""
    assert (await client.ask({"command": "save_recipe", "recipe": RECIPE}))["success"]
    await client.ask({"command": "save_thing", "thing": {"id": 1, "override": True}})
    send_udp(daemon.config.mesh.udp_port, f"{SOURCE}:Other&1:1.00".encode())
    await client.next_push("node_update")
    assert factory.pin(17).state is False  # under override the recipe does not switch it

    await client.ask({"command": "save_thing", "thing": {"id": 1, "type": 1, "value": 0,
                                                          "override": False}})

    assert factory.pin(17).state is True
