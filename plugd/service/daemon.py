"""The daemon: wires the plug to its sockets, timers and signals, and runs them.

Start order: the mesh's and the page's ports (a port plugd cannot have stops it before it
changes anything), state, relay, mesh endpoint, HTTP/WebSocket server, timers. Stop
order is the reverse, and saves everything; SIGHUP re-reads the configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpiozero import Factory

from plugd import __version__
from plugd.core import meshkey
from plugd.core.model import ThingId, esp_time, sanitize_name
from plugd.core.registry import Peer, Registry
from plugd.doors.api import COMMANDS, Api, Handler
from plugd.doors.auth import AUTH_FILE, Auth
from plugd.doors.hosts import Names
from plugd.doors.http_api import HttpApi
from plugd.doors.mdns import Announcer, host_label
from plugd.doors.messages import message, node_json, thing_update
from plugd.doors.udp import (
    NAMES_EVERY,
    Broadcaster,
    Every,
    MeshEndpoint,
    Throttle,
    kernel_drops,
)
from plugd.doors.web import WebServer, is_local_address
from plugd.errors import ConfigError, HardwareError, StoreError
from plugd.hardware import pin_factory as default_pin_factory
from plugd.hardware.adc import Sampler
from plugd.hardware.display import Display, Fault, Reading
from plugd.hardware.i2c import I2CBus
from plugd.hardware.relay import Relay
from plugd.service import netif, rundir, settings
from plugd.service.config import Config, MeshConfig
from plugd.service.energydb import EnergyHistory, start_history
from plugd.service.meshboot import boot_number
from plugd.service.meter import Meter, protection_of
from plugd.service.plug import Cause, Change, Plug
from plugd.service.ports import open_ports
from plugd.service.scheduler import Scheduler, location_of
from plugd.service.store import StateDir, dump
from plugd.service.systemd import Notifier, RepeatFilter

if TYPE_CHECKING:
    from plugd.doors.mqtt import MqttOutlet
    from plugd.hardware.sim.rig import Simulation

log = logging.getLogger(__name__)

HISTORY_POINTS = 600  # ten minutes of power, one point a second, for the page's chart
#: Seconds between two node_update pushes of one node: its datagrams in between become one
#: push, so a flood of datagrams does not become a flood of messages to every page.
NODE_PUSH_GAP = 0.5
NODES_SAVE_EVERY = 60.0  # seconds; known nodes change rarely, and a flood must not wear the card


def find_www(configured: str) -> Path:
    """The page's files: as configured, else the source tree's, else the installed copy."""
    if configured:
        return Path(configured)
    candidates = [Path(__file__).resolve().parents[2] / "www",
                  Path(sys.prefix) / "share/plugd/www", Path("/usr/share/plugd/www")]
    return next((p for p in candidates if (p / "index.html").is_file()), candidates[0])


@dataclass
class Daemon:
    """The running plug: its core, chips, doors and timers, started and stopped in order."""
    config: Config
    #: Re-reads the configuration on SIGHUP; None: reload is not possible.
    reload_config: Callable[[], Config] | None = None
    pin_factory: Factory | None = None
    started: float = field(default_factory=time.monotonic)
    sampler: Sampler | None = None
    simulation: Simulation | None = None
    notifier: Notifier = field(default_factory=Notifier)
    #: The log filter that summarises repeats; flushed every second.
    repeats: RepeatFilter | None = None
    mdns: Announcer | None = None
    #: The wall clock (local dates, times shown); durations use time.monotonic, which NTP
    #: cannot step.
    wall: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.node_id = self.config.node.id or netif.derive_node_id()
        self.node_name = self.config.node.name or sanitize_name(socket.gethostname())
        self._stop = asyncio.Event()
        self._stopped = False
        self._history: deque[tuple[int, float | None]] = deque(maxlen=HISTORY_POINTS)
        self._tasks: list[asyncio.Task[Any]] = []
        self._broadcast_cache: tuple[float, list[str]] = (float("-inf"), [])
        self._status = ""
        #: One settings save at a time: each merges into what the one before left.
        self._settings_lock = asyncio.Lock()
        self._names: tuple[Any, Names] | None = None
        self._mqtt_lock = asyncio.Lock()
        self.mqtt: MqttOutlet | None = None
        self.energy_history: EnergyHistory | None = None

    # --- lifecycle ----------------------------------------------------------

    async def start(self, http_socket: socket.socket | None = None) -> None:
        """Start in order; `http_socket` is the listening socket systemd passed, if any."""
        config = self.config
        ports = open_ports(config, http_socket)
        loop = asyncio.get_running_loop()
        state = StateDir(Path(config.state.dir))
        state.prepare()
        self.settings = settings.load(state)
        try:
            config = self.config = settings.laid_over(config, self.settings)
        except ConfigError as err:
            log.error("the settings made on the page no longer apply, ignoring them: %s", err)
        self.node_name = config.node.name or self.node_name
        self.auth = Auth(state)
        factory = self.pin_factory
        if factory is None:
            factory = default_pin_factory(config.simulated)
        relay = config.relay
        self.registry = Registry(self.node_id, max_nodes=config.mesh.max_nodes,
                                 offline_after=config.mesh.interval * config.mesh.offline_after)
        self.scheduler = Scheduler(state, location_of(config.location), wall=self.wall)
        self.plug = Plug(
            node_id=self.node_id, node_name=self.node_name, state=state, registry=self.registry,
            power_on_state=relay.power_on_state, wall=self.wall, auto_off=relay.auto_off,
            scheduled=self.scheduler.power_on,
            open_relay=lambda on: Relay(relay.pin, active_high=relay.active_high, initial=on,
                                        pin_factory=factory))
        self.plug.guard, self.plug.signer = self._mesh_keys(config.mesh)
        self.simulation = None
        self.commands: Mapping[str, Handler] = COMMANDS
        if config.simulated:  # the chips' stand-ins and their commands, never loaded otherwise
            from plugd.doors.api import simulation
            from plugd.hardware.sim.rig import build

            self.simulation = build(config, factory)
            self.commands = {**COMMANDS, **simulation.COMMANDS}
        self.meter = self._start_meter(loop, factory) if config.adc.enabled else None
        if self.meter is not None:
            self.energy_history = await start_history(self.meter, self.plug, self.wall)
        self.display = self._open_display()
        self.endpoint = MeshEndpoint(ports.mesh,
                                     self.plug.receive, self.registry.counters, loop)
        self.web = WebServer(find_www(config.http.www_dir),
                             lambda address, session: Api(self, address, session), self.auth,
                             lambda: self.config.http, self.names,
                             self._session_ended_by_request,
                             HttpApi(self, self.names).routes())
        await self.web.start(ports.http)
        try:  # where plugctl on this machine finds this daemon's token
            self._record: Path | None = rundir.announce(self.web.port, state.path)
        except OSError as err:
            self._record = None
            log.warning("plugctl will not find this daemon's token by its port: %s", err)
        if http_socket is not None:
            log.info("serving on the socket systemd passed (http.port and http.bind are unused)")
        self.broadcaster = Broadcaster(loop, self._broadcast, interval=config.mesh.interval,
                                       max_rate=config.mesh.max_changes_per_second)
        self.broadcaster.on_interval.append(self._push_things)
        self.broadcaster.on_interval.append(Every(NAMES_EVERY, self._broadcast_names))
        self._node_pushes = Throttle(loop, self._push_node, NODE_PUSH_GAP)
        self.plug.listeners.append(self._on_change)
        self.plug.on_broadcast = self.broadcaster.changed
        self.broadcaster.start()
        self._start_mqtt()
        self.scheduler.start(self.plug)
        self._tasks = [asyncio.create_task(self._every_second(), name="tick"),
                       asyncio.create_task(self._save_nodes(), name="save-nodes")]
        if self.meter is not None:
            self._tasks.append(asyncio.create_task(self._save_energy(), name="save-energy"))
        if self.notifier.watchdog_interval:
            self._tasks.append(asyncio.create_task(self._pet_watchdog(), name="watchdog"))
        if config.mdns.enabled:
            self.mdns = Announcer(self.node_id, self.node_name, self.web.port, __version__,
                                  addresses=["127.0.0.1"] if config.simulated else None)
            # In the background: claiming the names waits for other hosts to object.
            self._tasks.append(asyncio.create_task(self.mdns.start(), name="mdns"))
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        log.info("plugd %s: node %d (%s), mesh on UDP %d, page on http://%s:%d/%s",
                 __version__, self.node_id, self.node_name, config.mesh.udp_port,
                 config.http.bind or "localhost", self.web.port,
                 " [simulated hardware]" if config.simulated else "")
        self.notifier.ready(self._status_line())

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT."""
        await self._stop.wait()

    async def stop(self) -> None:
        """Stop everything in the reverse order of start, saving all; once, however often asked."""
        if self._stopped:
            return
        self._stopped = True
        self.notifier.stopping()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        self.broadcaster.stop()
        self._node_pushes.stop()
        if self.mqtt is not None:  # `offline` while the plug can still say it
            await self.mqtt.close()
        await self.scheduler.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.mdns is not None:
            await self.mdns.close()
        await self.web.close()
        if self._record is not None:
            rundir.withdraw(self._record)
        self.endpoint.close()
        if self.sampler is not None:
            await asyncio.to_thread(self.sampler.stop)
        if self.energy_history is not None:
            await self.energy_history.flush(self.wall())
            await self.energy_history.close()
        if self.meter is not None:
            await self.meter.save_energy()
        if self.display is not None:
            await asyncio.to_thread(self.display.close)
        if self.simulation is not None:
            self.simulation.close()
        await self.plug.close()
        if self.plug.relay is not None and self.config.relay.stop_state == "off":
            self.plug.relay.close()
        log.info("plugd stopped")

    # --- chips ----------------------------------------------------------------

    def _start_meter(self, loop: asyncio.AbstractEventLoop, factory: Factory | None) -> Meter:
        adc = self.config.adc
        meter = Meter(self.plug, self.config, loop, self.wall)
        clock = time.monotonic
        if self.simulation is not None:
            emulator = self.simulation.adc
            clock = emulator.clock  # its ALERT/RDY pulses come in batches, each in its own time
            def open_bus() -> Any:
                return emulator
        else:
            def open_bus():
                return I2CBus(adc.bus)
        self.sampler = Sampler(open_bus, address=adc.address, channel=adc.channel,
                               full_scale=adc.full_scale, data_rate=adc.data_rate,
                               alert_pin=adc.alert_pin, pin_factory=factory,
                               consume=meter.consume, on_fault=meter.on_fault, clock=clock)
        self.sampler.start()
        return meter

    def _open_display(self) -> Display | None:
        display = self.config.display
        if not display.enabled:
            return None
        loop = asyncio.get_running_loop()

        def on_fault(err: Exception | None) -> None:
            message = "display back" if err is None else f"display failed: {err}"
            loop.call_soon_threadsafe(self.plug.record, "fault", message, Cause("display"), "display")

        try:
            return Display(display.clk, display.dio, brightness=display.brightness,
                           mode=display.mode, on_fault=on_fault)
        except HardwareError as err:
            self.plug.record("fault", f"no display: {err}", Cause("display"), "display")
            return None

    def _show(self) -> None:
        if self.display is None:
            return
        things, invalid = self.plug.things, self.plug.invalid

        def value(thing_id: int) -> float | None:
            return None if thing_id in invalid else things[thing_id].value

        fault = None
        if self.plug.tripped:
            fault = Fault.OVERLOAD
        elif self.meter is not None and self.meter.fault:
            fault = Fault.SENSOR
        self.display.show(Reading(power=value(ThingId.POWER), current=value(ThingId.CURRENT),
                                  energy_today=value(ThingId.ENERGY_TODAY), fault=fault))

    # --- timers -------------------------------------------------------------

    async def _every_second(self) -> None:
        while True:
            try:
                self.plug.tick()
                self.sessions_ended()  # expired or evicted by newer logins: felt at once
                self.web.tick(self.wall())
                self._show()
                if self.repeats is not None:
                    self.repeats.flush()
                status = self._status_line()
                if status != self._status:
                    self._status = status
                    self.notifier.status(status)
                power = None if ThingId.POWER in self.plug.invalid else self.plug.things[ThingId.POWER].value
                self._history.append((esp_time(self.plug.wall()), power))
            except Exception:
                log.exception("clock tick failed")
            await asyncio.sleep(1.0 - self.wall() % 1.0)

    async def _pet_watchdog(self) -> None:
        """From the event loop itself: when the loop hangs, the pets stop and systemd restarts us."""
        assert self.notifier.watchdog_interval
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(self.notifier.watchdog_interval)

    def _status_line(self) -> str:
        """What `systemctl status plugd` shows, e.g. `relay on, 1520 W, 7 nodes online`."""
        plug = self.plug
        power = ("no power reading" if ThingId.POWER in plug.invalid
                 else f"{plug.things[ThingId.POWER].value:.0f} W")
        parts = [f"relay {'on' if plug.things[ThingId.PLUG].value == 1.0 else 'off'}", power,
                 f"{self.registry.online_count()} nodes online"]
        if plug.tripped:
            parts.append(f"PROTECTION TRIPPED: {plug.tripped}")
        if self.meter is not None and self.meter.fault:
            parts.append("sensor fault")
        return ", ".join(parts)

    async def _save_energy(self) -> None:
        """A power cut loses at most `meter.flush_interval` of energy."""
        assert self.meter is not None
        while True:
            await asyncio.sleep(self.config.meter.flush_interval)
            try:
                await self.meter.save_energy()
            except Exception as err:
                log.error("cannot save the energy counters: %s", err)
            if self.energy_history is not None:  # says itself when the disk refuses
                await self.energy_history.flush(self.wall())

    async def _save_nodes(self) -> None:
        while True:
            await asyncio.sleep(NODES_SAVE_EVERY)
            try:
                await self.plug.save_nodes_if_changed()
            except Exception as err:
                log.error("cannot save the known nodes: %s", err)

    # --- the mesh and the page ------------------------------------------------

    def changing(self) -> contextlib.AbstractContextManager[None]:
        """While a person's change runs (a page's or plugctl's command), datagrams wait in the
        kernel: under a flood the switch is answered as fast as on a quiet mesh."""
        endpoint = getattr(self, "endpoint", None)
        return endpoint.held() if endpoint is not None else contextlib.nullcontext()

    def broadcast_targets(self) -> list[str]:
        """Where broadcasts go: as configured, else every interface's broadcast address."""
        if self.config.mesh.broadcast:
            return self.config.mesh.broadcast
        checked, targets = self._broadcast_cache
        now = time.monotonic()
        if now - checked > 30.0:  # interfaces come and go (DHCP at boot, Wi-Fi)
            targets = netif.broadcast_addresses()
            self._broadcast_cache = (now, targets)
        return targets

    def _broadcast(self) -> None:
        self.endpoint.send(self.plug.datagram(), self.broadcast_targets(), self.config.mesh.udp_port)

    def _broadcast_names(self) -> None:
        """What this node's things are, for other plugd nodes (ESP8266 nodes ignore it)."""
        self.endpoint.send(self.plug.names_datagram(), self.broadcast_targets(),
                           self.config.mesh.udp_port)

    def _on_change(self, change: Change) -> None:
        if not self.web.clients:  # the messages below cost more than the packet that made them
            return
        if change.thing is not None:
            self.web.push(thing_update(self.plug, change.thing))
        elif change.peer is not None:
            self._node_pushes.request(change.peer.id, change.peer)
        elif change.event is not None:
            self.web.push(message(self.plug, "event", event=change.event.to_json()))

    def _push_node(self, peer: Peer) -> None:
        self.web.push(message(self.plug, "node_update", node=node_json(self.plug, peer)))

    def _push_things(self) -> None:
        # One write per page for all of them: a page's socket is woken once a round, not per thing.
        self.web.push(*(thing_update(self.plug, thing) for thing in self.plug.things.values()))

    # --- status and reload ----------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What `request_status` and `plugctl status` show."""
        plug = self.plug
        counters = self.registry.counters
        return {
            "version": __version__, "simulate": self.config.simulated,
            "uptime": round(time.monotonic() - self.started, 1),
            "relay": plug.things[ThingId.PLUG].value == 1.0,
            "override": plug.things[ThingId.PLUG].override,
            "power": plug.things[ThingId.POWER].value,
            "energyToday": plug.things[ThingId.ENERGY_TODAY].value,
            "nodesOnline": self.registry.online_count(), "nodesKnown": len(self.registry.peers),
            "nodesOnProbation": self.registry.on_probation, "nodesMax": self.registry.max_nodes,
            "recipes": len(plug.recipes), "clients": len(self.web.clients),
            "http": self.web.counters(),
            "broadcast": self.broadcast_targets(), "udpPort": self.config.mesh.udp_port,
            "counters": {name: getattr(counters, name) for name in counters.__slots__},
            "kernelDrops": kernel_drops(self.endpoint.socket),
            "signed": plug.signer is not None,
            "tasks": len(asyncio.all_tasks()),
            "current": plug.things[ThingId.CURRENT].value,
            "valid": {str(t): t not in plug.invalid for t in (ThingId.POWER, ThingId.CURRENT)},
            "tripped": plug.tripped,
            "autoOffAt": plug.off_at,
            "relayFault": plug.relay_fault,
            "displayFault": None if self.display is None or self.display.fault is None
            else str(self.display.fault),
            "meter": None if self.meter is None else self.meter.view(),
            "history": None if self.energy_history is None else self.energy_history.view(),
            "display": self._display_text(),
            "mqtt": {"enabled": False} if self.mqtt is None else self.mqtt.status(),
            "schedules": self.scheduler.status(),
        }

    def _start_mqtt(self) -> None:
        """The MQTT outlet, if [mqtt] names a broker: in the background, so an absent broker
        delays nothing."""
        config = self.config
        if not config.mqtt.host:
            return
        from plugd.doors.mqtt import MqttOutlet

        self.mqtt = MqttOutlet(
            config.mqtt, self.plug, version=__version__, url=self._page_url(),
            model="plugd smart plug" + (" (simulated)" if config.simulated else ""),
            faults=self._faults, lan=self._relay_to_lan,
            interval=lambda: self.config.mesh.interval)
        self.mqtt.start()

    def _relay_to_lan(self, datagram: bytes) -> None:
        """A node of another subnet re-broadcast here ([mqtt] relay_to_lan), where our own
        broadcasts go."""
        self.endpoint.send(datagram, self.broadcast_targets(), self.config.mesh.udp_port)

    async def _restart_mqtt(self) -> None:
        """[mqtt] changed from the page or a reload: the old connection says `offline` and
        goes, a new one (if a broker is named) announces the plug again."""
        async with self._mqtt_lock:
            if self.mqtt is not None:
                old, self.mqtt = self.mqtt, None
                await old.close()
            self._start_mqtt()

    def _faults(self) -> list[str]:
        """The faults the plug has now, in words: the current sensor, the relay, the display."""
        display = None if self.display is None else self.display.fault
        found = [None if self.meter is None else self.meter.fault, self.plug.relay_fault,
                 None if display is None else f"display: {display}"]
        return [f for f in found if f]

    def _page_url(self) -> str:
        """The page's address, for Home Assistant's link to it."""
        from plugd.doors.mqtt import page_url

        http = self.config.http
        return page_url(http.bind, self.web.port, self.node_name, self.config.mdns.enabled)

    def names(self) -> Names:
        """The names the page answers to: localhost, the addresses, the node's and the machine's
        .local names (mDNS), and http.server_names; the pages trusted besides its own."""
        http = self.config.http
        own = {"localhost", socket.gethostname(), f"{socket.gethostname()}.local",
               f"{host_label(self.node_name, fallback=f'plugd-{self.node_id}')}.local",
               *http.server_names}
        if self.mdns is not None and self.mdns.host:
            own.add(self.mdns.host)
        key = (frozenset(own), tuple(http.trusted_origins))
        if self._names is None or self._names[0] != key:
            self._names = (key, Names(own, is_local_address, http.trusted_origins))
        return self._names[1]

    def _display_text(self) -> str | None:
        """What the display shows; under --simulate, decoded from its pins."""
        if self.simulation is not None and self.simulation.display is not None:
            return self.simulation.display.text
        return None if self.display is None else self.display.text

    def reload(self) -> None:
        """SIGHUP: apply what can change while running; say what needs a restart."""
        if self.reload_config is None:
            return
        self.notifier.reloading()
        try:
            new = settings.laid_over(self.reload_config(), self.settings)
            keys = self._mesh_keys(new.mesh)
        except (ConfigError, StoreError) as err:
            log.error("configuration not reloaded, keeping the running one: %s", err)
            return
        finally:
            self.notifier.ready(self._status_line())
        needs_restart = self._apply_live(new, keys)
        log.info("configuration reloaded%s", f"; restart to apply {', '.join(needs_restart)}"
                 if needs_restart else "")

    async def save_settings(self, changes: dict[str, Any]) -> None:
        """Settings from the page: checked, kept in the state directory, applied at once."""
        async with self._settings_lock:
            merged = {**self.settings, **changes}
            new = settings.apply(self.config, changes)
            keys = self._mesh_keys(new.mesh)  # a new key's boot number is stored first
            await self.plug.writer.save(settings.SETTINGS_FILE, dump(merged))
            self.settings = merged
            self._apply_live(new, keys)

    def _mesh_keys(self, mesh: MeshConfig) -> tuple[meshkey.Guard | None, meshkey.Signer | None]:
        """The guard and signer for `mesh`'s key (none without one), at start and on a change.

        A key new to this run signs from a fresh boot number, stored before it is used
        (StoreError before anything changed), so its counters stay above every one sent
        before; a new guard keeps the counters the old one accepted, so replays stay refused.
        """
        if not mesh.mesh_key:
            return None, None
        plug, old = self.plug, self.config.mesh
        key = mesh.mesh_key.encode("utf-8")
        signer = plug.signer
        if signer is None or mesh.mesh_key != old.mesh_key:
            signer = meshkey.Signer(key, boot_number(plug.state))
        elif plug.guard is not None and mesh.trusted_esp_nodes == old.trusted_esp_nodes:
            return plug.guard, signer  # nothing changed
        guard = meshkey.Guard(key, mesh.trusted_esp_nodes)
        if plug.guard is not None:
            guard.last_counter.update(plug.guard.last_counter)
        return guard, signer

    def _apply_live(self, new: Config,
                    keys: tuple[meshkey.Guard | None, meshkey.Signer | None]) -> list[str]:
        """Make `new` the configuration, signing and checking with `keys` (from `_mesh_keys`);
        return what only a restart applies."""
        old = self.config
        needs_restart = [name for name in ("state", "adc", "meter")
                         if getattr(new, name) != getattr(old, name)]
        needs_restart += [f"relay.{k}" for k in ("pin", "active_high")
                          if getattr(new.relay, k) != getattr(old.relay, k)]
        if self.meter is not None and new.protection != old.protection:
            # A trip in force holds the relay off until a person switches it on.
            self.meter.protection = protection_of(new.protection)
        self.plug.guard, self.plug.signer = keys
        self.plug.core.auto_off = new.relay.auto_off
        needs_restart += [f"http.{k}" for k in ("port", "bind", "www_dir")
                          if getattr(new.http, k) != getattr(old.http, k)]
        needs_restart += [f"display.{k}" for k in ("enabled", "clk", "dio")
                          if getattr(new.display, k) != getattr(old.display, k)]
        needs_restart += [f"mesh.{k}" for k in ("udp_port", "bind")
                          if getattr(new.mesh, k) != getattr(old.mesh, k)]
        if new.node.id != old.node.id:
            needs_restart.append("node.id")
        self.config = new
        if new.mqtt != old.mqtt:
            self._tasks.append(asyncio.create_task(self._restart_mqtt(), name="mqtt-restart"))
        if new.node.name and new.node.name != self.node_name:
            self.node_name = self.plug.node_name = new.node.name
            if self.mdns is not None:
                self._tasks.append(asyncio.create_task(self.mdns.rename(self.node_name),
                                                       name="mdns-rename"))
            if self.mqtt is not None:
                self.mqtt.renamed(self.node_name, self._page_url())
        self.broadcaster.interval = new.mesh.interval
        self.broadcaster.sends.min_gap = 1.0 / new.mesh.max_changes_per_second
        self.registry.offline_after = new.mesh.interval * new.mesh.offline_after
        self.registry.max_nodes = new.mesh.max_nodes
        self.scheduler.relocate(location_of(new.location))
        self._broadcast_cache = (float("-inf"), [])
        if self.display is not None:
            self.display.mode = new.display.mode
            self.display.brightness = new.display.brightness
        logging.getLogger("plugd").setLevel(new.log.level.upper())
        return needs_restart

    def sessions_ended(self) -> None:
        """Sessions were ended (logout, password change): close the connections holding one."""
        closed = self.web.close_ended_sessions()
        if closed:
            log.info("closed %d connection(s) of ended sessions", closed)

    def _session_ended_by_request(self) -> None:
        """The page's cookie logout ended a session: keep that, and close its connections."""
        self.plug.save_soon(AUTH_FILE, self.auth.dump())
        self.sessions_ended()

    def history(self) -> list[list[float | None]]:
        """The last 10 minutes of power, one point a second: [seconds since 2000, W or null]."""
        return [list(point) for point in self._history]
