"""MQTT: the plug's state out to a broker, and the relay's commands in (Home Assistant and others).

An outlet of the plug's changes and a door for one command. It runs as one
task: connect, subscribe, announce, then publish changes and take commands
until the connection drops; then wait (backoff with jitter, at most 30 s) and
connect again. Nothing here can stop the daemon: while the broker is away the
plug's listeners only mark topics as due, so at most one message per topic
waits (the latest value wins), and every (re)connect publishes everything
again, as does Home Assistant saying `online` on its status topic.

A command is a change like any other: `Plug.set_thing` with a cause of kind
"mqtt", which the authority table counts as a person's, as the page's switch.
What is published is built by the pure `plugd.core.discovery`.

With `mesh = true` it also joins the mesh across subnets (`plugd.core.meshbridge`
has the topics and the rules that keep values from going round): it publishes
the plug and the nodes heard directly under `<root>/mesh/<nodeId>`, feeds what
the plugd of other subnets publish there into the registry, and with
`relay_to_lan` re-broadcasts those values on this subnet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiomqtt

from plugd.core import discovery, meshbridge
from plugd.core.discovery import OFFLINE, ONLINE, Device, Topics
from plugd.core.labels import Shown
from plugd.core.model import OFF, ON, ThingId
from plugd.core.plug import Cause, Change
from plugd.core.registry import Peer
from plugd.doors.udp import Throttle
from plugd.errors import PlugdError
from plugd.service import netif
from plugd.service.config import MqttConfig
from plugd.service.plug import Plug

log = logging.getLogger(__name__)

#: Things whose change makes the state JSON due.
STATE_THINGS = frozenset({ThingId.POWER, ThingId.CURRENT, ThingId.ENERGY_TODAY,
                          ThingId.ENERGY_TOTAL, ThingId.ENERGY_YESTERDAY})
#: Event kinds that change the protection or faults of the state JSON.
STATE_EVENTS = frozenset({"fault", "protection"})
#: Publications in flight at once. Each waits until it is written (QoS 0: the values, which
#: the next one replaces) or acknowledged (QoS 1: discovery and availability), so a slow broker
#: slows the outlet instead of filling memory.
BATCH = 32
#: Commands and statuses read but not yet handled, at most; beyond, the client drops them.
MAX_INCOMING = 256
#: Seconds a clean stop waits to say `offline` and disconnect before it gives up.
STOP_WAIT = 3.0
#: Seconds to wait for the broker's answer to a connect, a subscribe or a publication.
ANSWER_WAIT = 10.0

#: Seconds between two publications of one mesh node: its datagrams in between become one.
MESH_GAP = 0.5
#: Seconds the interfaces' networks are trusted before they are read again.
NETWORKS_FOR = 30.0

#: What a topic publishes when it is its turn: (payload, QoS), always retained, built then,
#: so the latest value goes out, never a queue of old ones; None: nothing after all.
Message = Callable[[], tuple[bytes, int] | None]
#: TCP_NODELAY: a state right after a command's acknowledgement leaves at once, instead of
#: waiting for the broker's delayed ACK of it (Nagle's algorithm: tens of milliseconds).
NO_DELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _fixed(payload: bytes, qos: int = 1) -> Message:
    return lambda: (payload, qos)


def page_url(bind: str, port: int, node_name: str, mdns: bool) -> str:
    """The page's address for Home Assistant's "Visit" link: the bound address if one, else
    the plug's .local name (mDNS), else the machine's host name."""
    from plugd.doors.mdns import host_label

    if bind and bind not in ("0.0.0.0", "::"):
        host = f"[{bind}]" if ":" in bind else bind
    elif mdns:
        host = f"{host_label(node_name)}.local"
    else:
        host = socket.gethostname()
    return f"http://{host}/" if port == 80 else f"http://{host}:{port}/"


class MqttOutlet:
    """The connection to one broker: announces the plug (and with `bridge_mesh` its mesh),
    publishes its changes and switches the relay on command."""

    def __init__(self, config: MqttConfig, plug: Plug, *, version: str, model: str,
                 url: str, faults: Callable[[], list[str]],
                 wall: Callable[[], float] = time.time,
                 lan: Callable[[bytes], None] | None = None,
                 interval: Callable[[], float] = lambda: 5.0) -> None:
        self.config = config
        self.plug = plug
        self.faults = faults
        self.wall = wall
        node_id = plug.node_id
        self.client_id = config.client_id or f"plugd-{node_id}"
        self.topics = Topics(config.topic_prefix or discovery.default_prefix(plug.node_name, node_id),
                             config.discovery_prefix, node_id)
        self.device = Device(node_id, plug.node_name, model, version, url)
        self.cause = Cause("mqtt", f"{config.host}:{config.port}")
        #: "connecting", "connected", or "waiting" between tries.
        self.state = "connecting"
        self.last_error: str | None = None
        self.connected_since: float | None = None
        self.connects = self.published = self.commands = 0
        self._pending: dict[str, Message] = {}
        self._wake = asyncio.Event()
        #: The peers announced: their name and things' names when their configs were last queued.
        self._announced: dict[int, tuple[str, frozenset[tuple[int, Shown]]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._told_retained = False
        #: The mesh across subnets: sends a datagram on this subnet (relay_to_lan), and the
        #: mesh's broadcast interval (the plug's own values go out as often).
        self.lan = lan
        self.interval = interval
        self.mesh_root = meshbridge.prefix_root(self.topics.prefix)
        self.mesh_counts = {"published": 0, "received": 0, "taken": 0, "echoes": 0,
                            "retained": 0, "invalid": 0, "rebroadcast": 0}
        self.mesh_error: str | None = None
        self._mesh_sends: Throttle | None = None
        self._mesh_timer: asyncio.Task[None] | None = None
        self._networks: tuple[float, list[str]] = (float("-inf"), [])

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Follow the plug's changes and keep a connection to the broker, in the background."""
        self.plug.listeners.append(self.on_change)
        if self.config.mesh:
            loop = asyncio.get_running_loop()
            self._mesh_sends = Throttle(loop, self._mesh_due, MESH_GAP)
            self._mesh_timer = asyncio.create_task(self._mesh_own(), name="mqtt-mesh")
        self._task = asyncio.create_task(self._run(), name="mqtt")

    async def close(self) -> None:
        """Say `offline` (retained) and disconnect, within STOP_WAIT; the broker is then told
        the plug stopped on purpose, not lost."""
        self._closing = True
        with contextlib.suppress(ValueError):
            self.plug.listeners.remove(self.on_change)
        if self._mesh_sends is not None:
            self._mesh_sends.stop()
        if self._mesh_timer is not None:
            self._mesh_timer.cancel()
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
            await asyncio.wait_for(asyncio.shield(self._task), STOP_WAIT)
        if not self._task.done():
            self._task.cancel()

    def renamed(self, name: str, url: str) -> None:
        """The node got a new name: the device's name (and page link) change, not its ids or
        topics."""
        self.device = replace(self.device, name=name, url=url)
        for topic, payload in discovery.announcements(self.topics, self.device):
            self._put(topic, _fixed(discovery.encode(payload)))

    def status(self) -> dict[str, Any]:
        """What `request_status` and `plugctl status` show of the broker connection."""
        return {"enabled": True, "state": self.state,
                "broker": f"{self.config.host}:{self.config.port}", "tls": self.config.tls,
                "clientId": self.client_id, "topicPrefix": self.topics.prefix,
                "error": self.last_error, "connectedSince": self.connected_since,
                "connects": self.connects, "published": self.published,
                "commands": self.commands, "due": len(self._pending),
                "mesh": {"enabled": True, "topics": meshbridge.subscription(self.mesh_root),
                         "relayToLan": self.config.relay_to_lan, "error": self.mesh_error,
                         **self.mesh_counts} if self.config.mesh else {"enabled": False}}

    # --- the connection ---------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        config = self.config
        tls = aiomqtt.TLSParameters(ca_certs=config.ca_file or None) if config.tls else None
        client = aiomqtt.Client(
            config.host, config.port, username=config.username or None,
            password=config.password or None, identifier=self.client_id,
            keepalive=config.keepalive, timeout=ANSWER_WAIT, tls_params=tls,
            will=aiomqtt.Will(self.topics.availability, OFFLINE, qos=1, retain=True),
            max_queued_incoming_messages=MAX_INCOMING, socket_options=[NO_DELAY],
            logger=logging.getLogger(f"{__name__}.client"))
        client.pending_calls_threshold = BATCH + 1  # a full batch in flight is the normal case
        return client

    async def _run(self) -> None:
        """Connect, serve, and after a failure wait and try again, for as long as the daemon runs."""
        failures = 0
        where = f"{self.config.host}:{self.config.port}"
        while True:
            self.state = "connecting"
            try:
                async with self._client() as client:
                    failures = 0
                    self.connects += 1
                    self.state, self.last_error = "connected", None
                    self.connected_since = self.wall()
                    log.info("MQTT: connected to %s as %s, topics under %s/", where,
                             self.client_id, self.topics.prefix)
                    try:
                        await self._serve(client)
                    finally:
                        self.state, self.connected_since = "connecting", None
                        if self._closing:
                            await self._say_offline(client)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # whatever a broker or a network does, the plug goes on
                failures += 1
                error = f"{type(err).__name__}: {err}" if not isinstance(err, aiomqtt.MqttError) \
                    else str(err)
                if failures == 1 or error != self.last_error:
                    log.warning("MQTT: no connection to %s (%s); trying again in the background",
                                where, error)
                self.last_error = error
            self.state = "waiting"
            await asyncio.sleep(discovery.backoff(max(failures, 1), random.random()))

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        """A clean stop: `offline`, retained, before disconnecting (which sends no last will)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.publish(self.topics.availability, OFFLINE, qos=1,
                                                  retain=True), STOP_WAIT)

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Subscribe, announce everything, then publish and receive until one of them fails."""
        subscriptions = [(self.topics.command, 1), (self.topics.ha_status, 1)]
        if self.config.mesh:
            subscriptions.append((meshbridge.subscription(self.mesh_root), 0))
        await client.subscribe(subscriptions)
        self.announce()
        publisher = asyncio.create_task(self._publish(client), name="mqtt-publish")
        receiver = asyncio.create_task(self._receive(client), name="mqtt-receive")
        try:
            done, _ = await asyncio.wait({publisher, receiver}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (publisher, receiver):
                task.cancel()
            await asyncio.gather(publisher, receiver, return_exceptions=True)
        for task in done:
            task.result()  # its error ends the connection, and the next try begins

    async def _publish(self, client: aiomqtt.Client) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            batch: list[Awaitable[None]] = []
            while self._pending and len(batch) < BATCH:
                topic = next(iter(self._pending))
                message = self._pending.pop(topic)()
                if message is not None:
                    batch.append(client.publish(topic, message[0], qos=message[1], retain=True))
            await asyncio.gather(*batch)
            self.published += len(batch)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            data = payload if isinstance(payload, bytes) else str(payload or "").encode()
            topic = message.topic.value
            if topic == self.topics.command:
                self._command(data, bool(message.retain))
            elif topic == self.topics.ha_status and data == ONLINE.encode() and not message.retain:
                log.info("MQTT: Home Assistant is online; announcing the plug again")
                self.announce()
            elif self.config.mesh and topic.startswith(self.mesh_root + "/"):
                self._mesh_in(topic, data, bool(message.retain))

    def _command(self, payload: bytes, retained: bool) -> None:
        """ON, OFF or TOGGLE for the relay: a person's switch, by another door."""
        topic = self.topics.command
        if not payload:  # someone clearing a retained command: no order
            return
        if retained:  # a stale order replayed at every connect; it would switch at every one
            if not self._told_retained:
                self._told_retained = True
                log.warning("MQTT: ignoring a retained command on %s; clear it with "
                            "mosquitto_pub -r -n -t '%s'", topic, topic)
            return
        self.commands += 1
        relay = self.plug.things[ThingId.PLUG]
        try:
            on = discovery.parse_command(payload, relay.value == ON)
            self.plug.set_thing(ThingId.PLUG, ON if on else OFF, self.cause)
        except PlugdError as err:  # a bad payload; a refusing pin (the plug recorded it)
            log.warning("MQTT: command on %s not carried out: %s", topic, err)
        self._put(self.topics.relay, self._relay_message)  # the state, even when unchanged

    # --- what is due ------------------------------------------------------------------------

    def announce(self) -> None:
        """Make everything due: availability, discovery, the current state (and the mesh)."""
        self._pending.clear()
        self._put(self.topics.availability, _fixed(ONLINE.encode()))
        for topic, payload in discovery.announcements(self.topics, self.device):
            self._put(topic, _fixed(discovery.encode(payload)))
        self._put(self.topics.relay, self._relay_message)
        self._put(self.topics.state, self._state_message)
        if self.config.bridge_mesh:
            self._announced.clear()
            for peer in list(self.plug.registry.peers.values()):
                self._peer(peer)
        if self.config.mesh:
            self._mesh_due(self.plug.node_id)
            for peer in list(self.plug.registry.peers.values()):
                if peer.online and not peer.via:
                    self._mesh_due(peer.id)

    def on_change(self, change: Change) -> None:
        """A plug listener: mark what the change makes due (cheap: nothing is built here)."""
        thing = change.thing
        if self._mesh_sends is not None:
            if thing is not None:
                self._mesh_sends.request(self.plug.node_id, self.plug.node_id)
            elif change.peer is not None and not change.peer.via:
                self._mesh_sends.request(change.peer.id, change.peer.id)
        if thing is not None:
            if thing.id == ThingId.PLUG:
                self._put(self.topics.relay, self._relay_message)
            elif thing.id in STATE_THINGS:
                self._put(self.topics.state, self._state_message)
        elif change.peer is not None:
            if self.config.bridge_mesh:
                self._peer(change.peer)
        elif change.event is not None and change.event.kind in STATE_EVENTS:
            self._put(self.topics.state, self._state_message)

    def _put(self, topic: str, message: Message) -> None:
        self._pending[topic] = message
        self._wake.set()

    def _peer(self, peer: Peer) -> None:
        """A peer heard, renamed, online or offline: its configs when new, its state, its
        availability."""
        shown = {tid: self.plug.core.shown(peer.id, tid) for tid in peer.things}
        known = (peer.name, frozenset(shown.items()))
        if self._announced.get(peer.id) != known:
            if len(self._announced) > 2 * self.plug.registry.max_nodes:  # ids the table let go
                peers = self.plug.registry.peers
                self._announced = {i: k for i, k in self._announced.items() if i in peers}
            self._announced[peer.id] = known
            for topic, payload in discovery.peer_announcements(self.topics, self.device, peer.id,
                                                               peer.name, peer.things, shown):
                self._put(topic, _fixed(discovery.encode(payload)))
        self._put(self.topics.peer_availability(peer.id),
                  lambda: ((ONLINE if peer.online else OFFLINE).encode(), 1))
        self._put(self.topics.peer(peer.id), lambda: (discovery.encode(discovery.peer_payload(
            {tid: t.value for tid, t in peer.things.items()})), 0))

    def _relay_message(self) -> tuple[bytes, int]:
        on = self.plug.things[ThingId.PLUG].value == ON
        return discovery.relay_payload(on).encode(), 0

    def _state_message(self) -> tuple[bytes, int]:
        plug = self.plug

        def value(thing_id: int) -> float | None:
            return None if thing_id in plug.invalid else plug.things[thing_id].value

        return discovery.encode(discovery.state_payload(
            power=value(ThingId.POWER), current=value(ThingId.CURRENT),
            energy_today=value(ThingId.ENERGY_TODAY), energy_total=value(ThingId.ENERGY_TOTAL),
            energy_yesterday=value(ThingId.ENERGY_YESTERDAY), tripped=plug.tripped,
            faults=self.faults())), 0

    # --- the mesh across subnets (plugd.core.meshbridge) ------------------------------------

    async def _mesh_own(self) -> None:
        """The plug's own values every mesh interval, so the plugd of other subnets keep it
        online (a change goes out at once besides)."""
        while True:
            await asyncio.sleep(max(0.1, self.interval()))
            if self._mesh_sends is not None:
                self._mesh_sends.request(self.plug.node_id, self.plug.node_id)

    def _mesh_due(self, node_id: int) -> None:
        """Make a node's mesh topic due; what goes out is built when it is its turn."""
        self._put(meshbridge.node_topic(self.mesh_root, node_id),
                  lambda: self._mesh_message(node_id))

    def _mesh_message(self, node_id: int) -> tuple[bytes, int] | None:
        """The plug itself, or a node heard directly; an empty message clears the topic of a
        node gone silent here; None for a node that is no longer heard directly (the loop rule:
        never publish what came from elsewhere)."""
        plug = self.plug
        if node_id == plug.node_id:
            things = {t.id: (t.value, plug.wire_text(t)) for t in plug.things.values()
                      if t.id not in plug.invalid}
            relayed = meshbridge.relayed_from(node_id, plug.node_name, things, node_id,
                                              signed=plug.signer is not None)
        else:
            peer = plug.registry.peers.get(node_id)
            if peer is None or not meshbridge.publishes(plug.node_id, peer.id, peer.via):
                return None
            if not peer.online:
                return b"", 0
            things = {tid: (t.value, t.text) for tid, t in peer.things.items()}
            relayed = meshbridge.relayed_from(
                peer.id, peer.name, things, plug.node_id, peer.address,
                meshbridge.subnet_of(peer.address, self._local_networks()), peer.signed)
        self.mesh_counts["published"] += 1
        return relayed.encode(), 0

    def _local_networks(self) -> list[str]:
        checked, found = self._networks
        now = time.monotonic()
        if now - checked > NETWORKS_FOR:
            try:
                found = netif.networks()
            except OSError:
                found = []
            self._networks = (now, found)
        return found

    def _mesh_in(self, topic: str, data: bytes, retained: bool) -> None:
        """A node's values from the broker: not our own, not a retained snapshot of the past;
        into the registry unless the node is heard here; then, with relay_to_lan, onto this
        subnet."""
        counts = self.mesh_counts
        try:
            relayed = meshbridge.parse(self.mesh_root, topic, data)
        except PlugdError as err:
            counts["invalid"] += 1
            if self.mesh_error is None:
                log.warning("MQTT: ignoring a message on %s: %s", topic[:120], err)
            self.mesh_error = f"{topic[:120]}: {err}"
            return
        if relayed is None:  # a topic cleared: the node went silent there
            return
        if relayed.via == self.plug.node_id:
            counts["echoes"] += 1
            return
        if retained:
            counts["retained"] += 1
            return
        counts["received"] += 1
        if not self.plug.receive_relayed(relayed.packet(), relayed.address):
            return
        counts["taken"] += 1
        if self.config.relay_to_lan and self.lan is not None:
            datagram = meshbridge.lan_datagram(relayed, self.plug.node_id)
            if datagram is not None:
                self.lan(datagram)
                counts["rebroadcast"] += 1
